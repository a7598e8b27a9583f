package status

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

var rateRE = regexp.MustCompile(`^rate\((\d+) (minute|hour|day)s?\)$`)

// NextRun is when a schedule next fires after now: for rate(), the last
// run plus the rate (or now, without a last run); for cron(), the next
// minute its fields match in its time zone. Zero when it cannot say (cron
// fields with L, W or #, which only the service evaluates).
func NextRun(expr, tz string, now, lastRun time.Time) time.Time {
	if m := rateRE.FindStringSubmatch(expr); m != nil {
		n, _ := strconv.Atoi(m[1])
		unit := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[m[2]]
		if lastRun.IsZero() {
			return now
		}
		next := lastRun.Add(time.Duration(n) * unit)
		for next.Before(now) {
			next = next.Add(time.Duration(n) * unit)
		}
		return next
	}
	body, ok := strings.CutPrefix(expr, "cron(")
	if !ok {
		return time.Time{}
	}
	f := strings.Fields(strings.TrimSuffix(body, ")"))
	if len(f) != 6 || strings.ContainsAny(f[2], "LW") || strings.Contains(f[4], "#") || strings.HasSuffix(f[4], "L") {
		return time.Time{}
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		loc = time.UTC
	}
	sets := make([]func(int) bool, 6)
	bounds := [][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {1, 7}, {1970, 2199}}
	for i := range f {
		if sets[i], ok = field(f[i], bounds[i][0], bounds[i][1]); !ok {
			return time.Time{}
		}
	}
	t := now.In(loc).Truncate(time.Minute).Add(time.Minute)
	for end := t.AddDate(2, 0, 0); t.Before(end); t = t.Add(time.Minute) {
		// AWS counts days of the week from 1 (Sunday).
		if sets[0](t.Minute()) && sets[1](t.Hour()) && sets[2](t.Day()) && sets[3](int(t.Month())) &&
			sets[4](int(t.Weekday())+1) && sets[5](t.Year()) {
			return t
		}
	}
	return time.Time{}
}

var names = map[string]int{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10,
	"NOV": 11, "DEC": 12, "SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}

// field reads one cron field: *, ?, n, a-b, a/s, */s, a-b/s and lists.
func field(s string, lo, hi int) (func(int) bool, bool) {
	if s == "*" || s == "?" {
		return func(int) bool { return true }, true
	}
	num := func(x string) (int, bool) {
		if n, ok := names[strings.ToUpper(x)]; ok {
			return n, true
		}
		n, err := strconv.Atoi(x)
		return n, err == nil && n >= lo && n <= hi
	}
	var match []func(int) bool
	for _, part := range strings.Split(s, ",") {
		rng, stepS, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepS)
			if err != nil || n < 1 {
				return nil, false
			}
			step = n
		}
		from, to := lo, hi
		switch a, b, isRange := strings.Cut(rng, "-"); {
		case rng == "*":
		case isRange:
			var ok1, ok2 bool
			from, ok1 = num(a)
			to, ok2 = num(b)
			if !ok1 || !ok2 {
				return nil, false
			}
		default:
			var ok bool
			if from, ok = num(rng); !ok {
				return nil, false
			}
			if !hasStep {
				to = from
			}
		}
		match = append(match, func(v int) bool { return v >= from && v <= to && (v-from)%step == 0 })
	}
	return func(v int) bool {
		for _, m := range match {
			if m(v) {
				return true
			}
		}
		return false
	}, true
}
