package filing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// KeepMalformed stores an SQS message body that cannot be used under
// rejected/_malformed/<yyyy>/<mm>/<dd>/<name>.event (name: MalformedName)
// with a reason document beside it, so nobody loses it and it never loops.
// Both queues' consumers use it: the router for bodies that are not S3
// notifications, the enqueue function for import messages it cannot trust.
func KeepMalformed(ctx context.Context, c s3io.Putter, l layout.Layout, bucket string, now func() time.Time,
	log *slog.Logger, m events.SQSMessage, cause error) error {
	t := now().UTC()
	key := l.RejectedKey("_malformed", t, MalformedName(m.MessageId, m.Body)+".event")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader(m.Body),
		ContentLength: aws.Int64(int64(len(m.Body))), ContentType: aws.String("application/octet-stream")}); err != nil {
		return fmt.Errorf("keep the message body at s3://%s/%s: %w", bucket, key, err)
	}
	doc := Reason{Reason: "malformed-event", Detail: cause.Error(), Bucket: bucket, RejectedAt: t, RejectedKey: key,
		MessageID: printableID(m.MessageId)}
	if err := s3io.PutJSON(ctx, c, bucket, key+layout.ReasonSuffix, doc); err != nil {
		return err
	}
	log.WarnContext(ctx, "kept a message that cannot be used", "sqsMessageId", m.MessageId, "rejectedKey", key, "error", cause.Error())
	return nil
}

// maxMalformedName bounds the name part of a _malformed key (S3 keys end at
// 1,024 bytes; SQS's own IDs are 36-character UUIDs).
const maxMalformedName = 100

// MalformedName is the file name (before ".event") a malformed message is
// kept under. The message ID is outside input that becomes a key: an ID of
// only [A-Za-z0-9._-] (every SQS UUID) is used as is; any other is reduced
// to those characters (others become '_') and, so that IDs that differ only
// in those characters do not overwrite each other, gets a hash of the ID
// appended; an ID with nothing usable is named by its hash alone, and an
// empty one by the body's hash. The result is never "", "." or "..".
func MalformedName(id, body string) string {
	if id == "" {
		sum := sha256.Sum256([]byte(body))
		return hex.EncodeToString(sum[:8])
	}
	safe := true
	clean := strings.Map(func(c rune) rune {
		if c < utf8.RuneSelf && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return c
		}
		safe = false
		return '_'
	}, id)
	if safe && len(clean) <= maxMalformedName && strings.Trim(clean, ".") != "" {
		return clean
	}
	sum := sha256.Sum256([]byte(id))
	tag := hex.EncodeToString(sum[:8])
	clean = strings.Trim(clean, "_.")
	if clean == "" {
		return tag
	}
	if len(clean) > maxMalformedName-len(tag)-1 {
		clean = clean[:maxMalformedName-len(tag)-1]
	}
	return clean + "-" + tag
}

// printableID is an SQS message ID for a JSON document: as is when it is
// valid UTF-8, else Go-quoted so that no byte of it is lost.
func printableID(id string) string {
	if utf8.ValidString(id) {
		return id
	}
	return strconv.QuoteToASCII(id)
}
