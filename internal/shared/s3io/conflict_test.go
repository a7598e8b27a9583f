package s3io_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// IsConflict knows S3's 409 ConditionalRequestConflict by its code or, with
// no code read, by its status, wrapped or not; other refusals are not it.
func TestIsConflict(t *testing.T) {
	status := func(code int) error {
		return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: errors.New("refused")}
	}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("put: %w", &smithy.GenericAPIError{Code: "ConditionalRequestConflict"}), true},
		{fmt.Errorf("put: %w", status(http.StatusConflict)), true},
		{&smithy.GenericAPIError{Code: "PreconditionFailed"}, false},
		{status(http.StatusPreconditionFailed), false},
		{nil, false},
	} {
		if got := s3io.IsConflict(tt.err); got != tt.want {
			t.Errorf("IsConflict(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
