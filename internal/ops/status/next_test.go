package status_test

import (
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/ops/status"
)

func TestNextRun(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 14, 30, 20, 0, time.UTC) // a Monday
	ams, _ := time.LoadLocation("Europe/Amsterdam")
	for _, tc := range []struct {
		expr, tz string
		last     time.Time
		want     time.Time
	}{
		{"rate(15 minutes)", "UTC", now.Add(-5 * time.Minute), now.Add(10 * time.Minute)},
		{"rate(1 hour)", "UTC", now.Add(-3 * time.Hour), now.Add(-3 * time.Hour).Add(3 * time.Hour)},
		{"rate(1 day)", "UTC", time.Time{}, now},
		{"cron(0 6 * * ? *)", "UTC", time.Time{}, time.Date(2026, 12, 8, 6, 0, 0, 0, time.UTC)},
		{"cron(0 6 * * ? *)", "Europe/Amsterdam", time.Time{}, time.Date(2026, 12, 8, 6, 0, 0, 0, ams)},
		{"cron(*/20 * * * ? *)", "UTC", time.Time{}, time.Date(2026, 12, 7, 14, 40, 0, 0, time.UTC)},
		{"cron(0 9 ? * TUE-THU *)", "UTC", time.Time{}, time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC)},
		{"cron(0 9 ? * WED *)", "UTC", time.Time{}, time.Date(2026, 12, 9, 9, 0, 0, 0, time.UTC)},
		{"cron(15 10 ? * 6 *)", "UTC", time.Time{}, time.Date(2026, 12, 11, 10, 15, 0, 0, time.UTC)}, // 6 is Friday
		{"cron(0 0 1 JAN,JUL ? *)", "UTC", time.Time{}, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"cron(0 0 L * ? *)", "UTC", time.Time{}, time.Time{}},
		{"cron(0 0 ? * 6#3 *)", "UTC", time.Time{}, time.Time{}},
		{"cron(0 0 1 1 ? 2020)", "UTC", time.Time{}, time.Time{}},
	} {
		if got := status.NextRun(tc.expr, tc.tz, now, tc.last); !got.Equal(tc.want) {
			t.Errorf("%s (%s): %v, want %v", tc.expr, tc.tz, got, tc.want)
		}
	}
}
