package s3io_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// Independent implementations of S3's checksums, to compute what a fake
// S3 claims (hash/crc64 here, minio/crc64nvme in the code).
func sums(b []byte) map[string]string {
	be32 := func(v uint32) string { return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, v)) }
	s1, s256, s512, m5 := sha1.Sum(b), sha256.Sum256(b), sha512.Sum512(b), md5.Sum(b)
	return map[string]string{
		"sha512":    base64.StdEncoding.EncodeToString(s512[:]),
		"md5":       base64.StdEncoding.EncodeToString(m5[:]),
		"crc32":     be32(crc32.ChecksumIEEE(b)),
		"crc32c":    be32(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))),
		"crc64nvme": base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, crc64.Checksum(b, crc64.MakeTable(0x9a6c9329ac4bc9b5)))),
		"sha1":      base64.StdEncoding.EncodeToString(s1[:]),
		"sha256":    base64.StdEncoding.EncodeToString(s256[:]),
	}
}

// fakeS3 answers GetObject for one object with the checksum header given,
// over TLS, and records whether the client asked for checksums.
type fakeS3 struct {
	srv      *httptest.Server
	body     []byte
	header   string // e.g. x-amz-checksum-crc64nvme
	value    string
	truncate int    // bytes left out of the body (the connection is cut)
	ctype    string // x-amz-checksum-type; FULL_OBJECT if empty
	mu       sync.Mutex
	asked    []string
}

func newFakeS3(t *testing.T, body []byte) *fakeS3 {
	f := &fakeS3{body: body}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.asked = append(f.asked, r.Header.Get("X-Amz-Checksum-Mode"))
		f.mu.Unlock()
		h := w.Header()
		h.Set("Content-Length", strconv.Itoa(len(f.body)))
		h.Set("ETag", `"abc"`)
		if f.header != "" {
			h.Set(f.header, f.value)
			h.Set("x-amz-checksum-type", map[bool]string{true: "FULL_OBJECT", false: f.ctype}[f.ctype == ""])
		}
		w.WriteHeader(http.StatusOK)
		w.Write(f.body[:len(f.body)-f.truncate])
		if f.truncate > 0 {
			if hj, ok := w.(http.Hijacker); ok {
				w.(http.Flusher).Flush()
				conn, _, _ := hj.Hijack()
				conn.Close()
			}
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeS3) client() *s3.Client {
	return s3.New(s3.Options{
		Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(f.srv.URL), UsePathStyle: true, HTTPClient: f.srv.Client(),
		// What config.LoadDefaultConfig gives the deployed functions.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
	})
}

// sink is an F&O-like receiver: it reads a POST body of a declared length
// and records how many bytes arrived.
func sink(t *testing.T) (*httptest.Server, func() int64) {
	var mu sync.Mutex
	var got int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = n
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv, func() int64 { mu.Lock(); defer mu.Unlock(); return got }
}

// post sends body with its length declared, as the d365 client does.
func post(t *testing.T, srv *httptest.Server, body io.Reader, size int64) error {
	req, _ := http.NewRequest(http.MethodPost, srv.URL, body)
	req.ContentLength = size
	resp, err := srv.Client().Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return err
}

func TestGetVerifiedChecksEveryAlgorithm(t *testing.T) {
	body := make([]byte, 3<<20+17)
	rand.Read(body)
	good := sums(body)
	for _, algo := range []string{"crc32", "crc32c", "crc64nvme", "sha1", "sha256", "sha512", "md5"} {
		t.Run(algo, func(t *testing.T) {
			f := newFakeS3(t, body)
			f.header, f.value = "x-amz-checksum-"+algo, good[algo]
			out, err := s3io.GetVerified(context.Background(), f.client(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("inbound/x/a.csv")})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("good %s: read %d bytes, %v", algo, len(got), err)
			}
			if f.asked[0] != "ENABLED" {
				t.Fatalf("x-amz-checksum-mode = %q; S3 returns checksums only when asked", f.asked[0])
			}

			// The same object with a wrong checksum, streamed on as the
			// enqueue function does: the receiver must never get every byte.
			bad := []byte(good[algo])
			bad[2] = map[bool]byte{true: 'B', false: 'A'}[bad[2] == 'A'] // still base64, another value
			f.value = string(bad)
			out, err = s3io.GetVerified(context.Background(), f.client(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("inbound/x/a.csv")})
			if err != nil {
				t.Fatal(err)
			}
			dst, received := sink(t)
			err = post(t, dst, out.Body, int64(len(body)))
			out.Body.Close()
			if !errors.Is(err, s3io.ErrChecksumMismatch) {
				t.Fatalf("bad %s: post error %v, want ErrChecksumMismatch", algo, err)
			}
			if !strings.Contains(err.Error(), "s3://b/inbound/x/a.csv") {
				t.Fatalf("the error does not name the object: %v", err)
			}
			if n := received(); n >= int64(len(body)) {
				t.Fatalf("bad %s: the receiver got all %d bytes of a corrupt object", algo, n)
			}
		})
	}
}

func TestGetVerifiedLeavesCompositeAndMissingChecksumsAlone(t *testing.T) {
	body := []byte("id,name\n1,a\n")
	for name, hdr := range map[string][2]string{
		"composite":      {"x-amz-checksum-crc32", "AAAAAA==-3"},
		"composite type": {"x-amz-checksum-crc32c", "AAAAAA=="},
		"none":           {"", ""},
		"garbage":        {"x-amz-checksum-crc64nvme", "not base64!"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeS3(t, body)
			f.header, f.value = hdr[0], hdr[1]
			if name == "composite type" {
				f.ctype = "COMPOSITE"
			}
			out, err := s3io.GetVerified(context.Background(), f.client(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(out.Body)
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("read %q, %v", got, err)
			}
		})
	}
}

func TestGetVerifiedCutShort(t *testing.T) {
	body := make([]byte, 1<<20)
	rand.Read(body)
	f := newFakeS3(t, body)
	f.header, f.value, f.truncate = "x-amz-checksum-crc64nvme", sums(body)["crc64nvme"], 1000
	out, err := s3io.GetVerified(context.Background(), f.client(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	dst, received := sink(t)
	if err := post(t, dst, out.Body, int64(len(body))); err == nil {
		t.Fatal("a body cut short was sent without an error")
	}
	if n := received(); n >= int64(len(body)) {
		t.Fatalf("the receiver got %d bytes of %d", n, len(body))
	}
}

// TestGetVerifiedOnMoto: the S3 stand-in answers the checksum request for
// objects uploaded the way the SDK uploads by default and with each
// algorithm asked for, and the bytes read back are the bytes put.
func TestGetVerifiedOnMoto(t *testing.T) {
	c := mototest.S3(t)
	b := mototest.NewBucket(t)
	body := make([]byte, 2<<20+5)
	rand.Read(body)
	ctx := context.Background()
	for _, algo := range []types.ChecksumAlgorithm{"", types.ChecksumAlgorithmCrc32c, types.ChecksumAlgorithmCrc64nvme, types.ChecksumAlgorithmSha256} {
		key := "inbound/x/" + string(algo) + ".csv"
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: &key, Body: bytes.NewReader(body), ChecksumAlgorithm: algo}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		out, err := s3io.GetVerified(ctx, c, &s3.GetObjectInput{Bucket: &b, Key: &key})
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%s: read %d bytes, %v", key, len(got), err)
		}
		if algo != "" && out.ChecksumCRC32 == nil && out.ChecksumCRC32C == nil && out.ChecksumCRC64NVME == nil && out.ChecksumSHA256 == nil {
			t.Errorf("%s: moto returned no checksum, so nothing was verified", key)
		}
	}
}
