// Package s3fake is an S3 stand-in: one in-memory object store with two
// faces. The in-process face is the set of *s3.Client methods the functions
// call, for unit and fuzz tests that moto_server would make far too slow;
// the server face serves the same store over TLS as the S3 REST API, so the
// benchmarks run the real SDK client's wire path at sizes moto cannot hold.
// It is local test tooling that never ships in a Lambda bootstrap: only
// tests and benchmarks import it.
package s3fake

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Object is one stored object. Body is nil when the fake keeps no bytes:
// a generated object (PutGenerated), or one the server face received as a
// multipart upload or a PutObject over 4 MiB.
type Object struct {
	Body []byte
	Meta map[string]string

	etag     string // quoted
	version  string // "" in an unversioned store
	ctype    string
	size     int64
	gen      []byte // a generated object's repeated block
	crc      string // a generated object's CRC64NVME (base64), "" if unknown
	modified time.Time
}

// ETag is the object's ETag, quoted as S3 sends it.
func (o *Object) ETag() string { return o.etag }

// VersionID is the object's version ID, "" in an unversioned store.
func (o *Object) VersionID() string { return o.version }

// Size is the object's length in bytes.
func (o *Object) Size() int64 { return o.size }

// kept reports whether Body holds the object's bytes.
func (o *Object) kept() bool { return o.gen == nil && int64(len(o.Body)) == o.size }

// open reads the object from byte off on.
func (o *Object) open(off int64) (io.Reader, error) {
	switch {
	case o.gen != nil:
		return newPatternReader(o.gen, off, o.size-off), nil
	case o.kept():
		return bytes.NewReader(o.Body[off:]), nil
	}
	return nil, errNotKept
}

// S3 is the object store, and its in-process face (sdk.go). Objects are
// replaced, never changed, so an *Object handed out stays as it was.
type S3 struct {
	versioned bool
	seq       atomic.Int64

	mu   sync.Mutex
	objs map[string]*Object // bucket + "\x00" + key
}

// New is an empty, unversioned store: objects written through it have no
// version ID unless Put gives one.
func New() *S3 { return &S3{objs: map[string]*Object{}} }

func objKey(bucket, key string) string { return bucket + "\x00" + key }

// apiError is an S3 error answer; both faces give the same ones.
type apiError struct {
	status    int
	code, msg string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

var (
	errNoSuchKey       = &apiError{http.StatusNotFound, "NoSuchKey", "The specified key does not exist."}
	errNoSuchVersion   = &apiError{http.StatusNotFound, "NoSuchVersion", "The specified version does not exist."}
	errPrecondition    = &apiError{http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"}
	errInvalidRange    = &apiError{http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The requested range is not satisfiable"}
	errInvalidArgument = &apiError{http.StatusBadRequest, "InvalidArgument", "Invalid copy source"}
	errNotKept         = &apiError{http.StatusNotImplemented, "NotImplemented", "The fake keeps no bytes of this object"}
)

func etagMatches(cond, etag string) bool { return strings.Trim(cond, `"`) == strings.Trim(etag, `"`) }

// versionMatches reports whether the version ID a request asks for ("" for
// the current one, "null" for an unversioned object's) names have.
func versionMatches(asked, have string) bool {
	return asked == "" || asked == have || asked == "null" && have == ""
}

func etagOf(b []byte) string {
	s := md5.Sum(b)
	return `"` + hex.EncodeToString(s[:]) + `"`
}

func lowerKeys(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// find is the object a request names: the current one or the version
// asked for, if its ETag matches ifMatch. The caller holds mu.
func (m *S3) find(bucket, key, version, ifMatch string) (*Object, error) {
	o := m.objs[objKey(bucket, key)]
	switch {
	case o == nil:
		return nil, errNoSuchKey
	case !versionMatches(version, o.version):
		return nil, errNoSuchVersion
	case ifMatch != "" && !etagMatches(ifMatch, o.etag):
		return nil, errPrecondition
	}
	return o, nil
}

func (m *S3) read(bucket, key, version, ifMatch string) (*Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.find(bucket, key, version, ifMatch)
}

// stamp gives a new object what the store assigns: an ETag (the MD5 of the
// bytes it keeps, else a unique one), a version ID in a versioned store, a
// modification time. The caller holds mu.
func (m *S3) stamp(o *Object) {
	n := m.seq.Add(1)
	if o.etag == "" {
		o.etag = fmt.Sprintf(`"%032x"`, n)
		if o.kept() {
			o.etag = etagOf(o.Body)
		}
	}
	if m.versioned && o.version == "" {
		o.version = fmt.Sprintf("v%016x", n)
	}
	if o.modified.IsZero() {
		o.modified = time.Now().UTC().Truncate(time.Second)
	}
	if o.Meta == nil {
		o.Meta = map[string]string{}
	}
}

// write stores o under the conditions a PUT may carry, checked and applied
// at once as S3 does: ifNoneMatch ("*": only where there is no object) and
// ifMatch (only over the current object of that ETag; none there is
// NoSuchKey).
func (m *S3) write(bucket, key string, o *Object, ifNoneMatch bool, ifMatch string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := objKey(bucket, key)
	if _, ok := m.objs[k]; ok && ifNoneMatch {
		return errPrecondition
	}
	if ifMatch != "" {
		if _, err := m.find(bucket, key, "", ifMatch); err != nil {
			return err
		}
	}
	m.stamp(o)
	m.objs[k] = o
	return nil
}

// copySource is the bucket, key and version ID a copy source names:
// "[/]bucket/key[?versionId=id]", the key percent-encoded.
func copySource(src string) (bucket, key, version string, err error) {
	src, v, hasVersion := strings.Cut(strings.TrimPrefix(src, "/"), "?versionId=")
	if hasVersion {
		if version, err = url.QueryUnescape(v); err != nil {
			return "", "", "", errInvalidArgument
		}
	}
	bucket, key, ok := strings.Cut(src, "/")
	if !ok {
		return "", "", "", errInvalidArgument
	}
	if key, err = url.PathUnescape(key); err != nil {
		return "", "", "", errInvalidArgument
	}
	return bucket, key, version, nil
}

// copyObject copies the object src names (guarded by ifMatch) to
// bucket/key. With replace the copy gets meta and ctype, else the
// source's metadata and content type.
func (m *S3) copyObject(src, ifMatch, bucket, key string, replace bool, meta map[string]string, ctype string) (*Object, error) {
	sb, sk, sv, err := copySource(src)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, err := m.find(sb, sk, sv, ifMatch)
	if err != nil {
		return nil, err
	}
	c := *o
	c.version, c.modified, c.Meta = "", time.Time{}, lowerKeys(o.Meta)
	if replace {
		c.Meta, c.ctype = lowerKeys(meta), ctype
	}
	m.stamp(&c)
	m.objs[objKey(bucket, key)] = &c
	return &c, nil
}

// remove deletes the object at bucket/key if it is the version asked for
// and its ETag matches ifMatch. Deleting what is not there succeeds.
func (m *S3) remove(bucket, key, version, ifMatch string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := objKey(bucket, key)
	o := m.objs[k]
	if o == nil || !versionMatches(version, o.version) {
		return nil
	}
	if ifMatch != "" && !etagMatches(ifMatch, o.etag) {
		return errPrecondition
	}
	delete(m.objs, k)
	return nil
}

type listed struct {
	key string
	o   *Object
}

// list is, in key order, up to max objects of bucket whose keys start with
// prefix and sort after after; more reports whether others follow.
func (m *S3) list(bucket, prefix, after string, max int) (page []listed, more bool) {
	m.mu.Lock()
	for k, o := range m.objs {
		b, key, _ := strings.Cut(k, "\x00")
		if b == bucket && strings.HasPrefix(key, prefix) && key > after {
			page = append(page, listed{key, o})
		}
	}
	m.mu.Unlock()
	sort.Slice(page, func(i, j int) bool { return page[i].key < page[j].key })
	if len(page) > max {
		return page[:max], true
	}
	return page, false
}

// byteRange is the part of an object of size bytes a Range header asks
// for ("bytes=N-" or "bytes=N-M", the forms the functions send): its
// start and length. No header is the whole object.
func byteRange(r string, size int64) (off, n int64, err error) {
	if r == "" {
		return 0, size, nil
	}
	first, last, _ := strings.Cut(strings.TrimPrefix(r, "bytes="), "-")
	off, err = strconv.ParseInt(first, 10, 64)
	if err != nil || off < 0 || off > size {
		return 0, 0, errInvalidRange
	}
	end := size - 1
	if last != "" {
		if end, err = strconv.ParseInt(last, 10, 64); err != nil || end < off {
			return 0, 0, errInvalidRange
		}
		end = min(end, size-1)
	}
	return off, end - off + 1, nil
}

// Put stores an object directly (test setup). An empty etag is the body's
// MD5; an empty version is none in an unversioned store, a new one in a
// versioned store.
func (m *S3) Put(bucket, key string, body []byte, etag, version string) *Object {
	o := &Object{Body: body, size: int64(len(body)), version: version}
	if etag != "" {
		o.etag = `"` + strings.Trim(etag, `"`) + `"`
	}
	m.write(bucket, key, o, false, "")
	return o
}

// PutGenerated stores a text/csv object of size bytes of block repeated,
// produced while it is read and never held (block is Pattern's). crc is its
// CRC64NVME (PatternCRC, computed once per content) or "".
func (m *S3) PutGenerated(bucket, key string, block []byte, size int64, crc string) *Object {
	o := &Object{gen: block, size: size, crc: crc, ctype: "text/csv"}
	m.write(bucket, key, o, false, "")
	return o
}

// Get returns a stored object.
func (m *S3) Get(bucket, key string) (*Object, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[objKey(bucket, key)]
	return o, ok
}

// Keys lists every bucket/key stored, sorted.
func (m *S3) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.objs))
	for k := range m.objs {
		out = append(out, strings.Replace(k, "\x00", "/", 1))
	}
	sort.Strings(out)
	return out
}

// DeletePrefix drops every object of bucket whose key starts with prefix.
func (m *S3) DeletePrefix(bucket, prefix string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.objs {
		if strings.HasPrefix(k, objKey(bucket, prefix)) {
			delete(m.objs, k)
		}
	}
}
