package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Notification is one S3 event notification as S3 puts it on a queue.
type Notification struct {
	// TestEvent is set for the s3:TestEvent S3 sends when the notification
	// configuration is saved; it names no object.
	TestEvent bool
	Records   []Record
}

// Record is one S3 event record with its key decoded.
type Record struct {
	EventName string    // e.g. "ObjectCreated:Put"
	EventTime time.Time // UTC; zero when absent, unreadable or outside years 1-9999
	Bucket    string
	// RawKey is the key as S3 sent it (URL-encoded, spaces as '+');
	// Key is the real object key.
	RawKey    string
	Key       string
	Size      int64 // -1 when the record did not say
	VersionID string
	ETag      string
	Sequencer string
}

// ErrMalformed wraps every reason a body is not a usable S3 notification.
var ErrMalformed = errors.New("not an S3 event notification")

// wire is the JSON shape; aws-lambda-go's events.S3Event fails the whole
// body on one undecodable key and cannot tell a missing size from 0, so
// the router reads the same fields itself.
type wire struct {
	Event   string `json:"Event"`
	Records []struct {
		EventName string          `json:"eventName"`
		EventTime json.RawMessage `json:"eventTime"`
		S3        *struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key       *string         `json:"key"`
				Size      json.RawMessage `json:"size"`
				VersionID string          `json:"versionId"`
				ETag      string          `json:"eTag"`
				Sequencer string          `json:"sequencer"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
}

// DecodeNotification reads an SQS message body holding an S3 event
// notification. Keys are URL-decoded as S3 encodes them ('+' is a space,
// "%2B" a plus, "%2F" a slash). A body that is not JSON, has no Records
// and is not a test event, or has a record without bucket or a decodable
// key, is an error wrapping ErrMalformed.
func DecodeNotification(body []byte) (Notification, error) {
	var w wire
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		return Notification{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if w.Event == "s3:TestEvent" {
		return Notification{TestEvent: true}, nil
	}
	if len(w.Records) == 0 {
		return Notification{}, fmt.Errorf("%w: no Records", ErrMalformed)
	}
	n := Notification{Records: make([]Record, 0, len(w.Records))}
	for i, r := range w.Records {
		if r.S3 == nil || r.S3.Bucket.Name == "" || r.S3.Object.Key == nil || *r.S3.Object.Key == "" {
			return Notification{}, fmt.Errorf("%w: record %d has no s3.bucket.name or s3.object.key", ErrMalformed, i)
		}
		key, err := url.QueryUnescape(*r.S3.Object.Key)
		if err != nil {
			return Notification{}, fmt.Errorf("%w: record %d: key %q: %v", ErrMalformed, i, *r.S3.Object.Key, err)
		}
		rec := Record{
			EventName: r.EventName, Bucket: r.S3.Bucket.Name, RawKey: *r.S3.Object.Key, Key: key, Size: -1,
			VersionID: r.S3.Object.VersionID, ETag: r.S3.Object.ETag, Sequencer: r.S3.Object.Sequencer,
		}
		if len(r.S3.Object.Size) > 0 && string(r.S3.Object.Size) != "null" {
			var sz int64
			if err := json.Unmarshal(r.S3.Object.Size, &sz); err != nil || sz < 0 {
				return Notification{}, fmt.Errorf("%w: record %d: size %s is not a byte count", ErrMalformed, i, r.S3.Object.Size)
			}
			rec.Size = sz
		}
		var ts string
		if json.Unmarshal(r.EventTime, &ts) == nil {
			// A time whose UTC year leaves 0001..9999 (possible through
			// the offset) cannot be written as JSON, so it is treated as
			// absent, like any unreadable time.
			if t, ok := parseEventTime(ts); ok && t.UTC().Year() >= 1 && t.UTC().Year() <= 9999 {
				rec.EventTime = t.UTC()
			}
		}
		n.Records = append(n.Records, rec)
	}
	return n, nil
}

// IsCreate reports whether a record announces a new object.
func (r Record) IsCreate() bool {
	return len(r.EventName) >= len("ObjectCreated:") && r.EventName[:len("ObjectCreated:")] == "ObjectCreated:"
}

// parseEventTime reads an eventTime: RFC 3339 as AWS writes it, or without
// a time zone (as moto writes it), which is UTC.
func parseEventTime(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	t, err := time.Parse("2006-01-02T15:04:05.999999999", s)
	return t, err == nil
}
