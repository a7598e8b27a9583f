package s3io

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/minio/crc64nvme"
)

// ErrChecksumMismatch: the bytes read are not the bytes S3 holds (or not as
// many as it said).
var ErrChecksumMismatch = errors.New("object checksum mismatch")

// GetVerified is GetObject whose body checks the object's full-object
// checksum while it streams, and withholds the last bytes of the object
// until the check has passed.
//
// The SDK can validate GET checksums itself, but it does so only once the
// body has been read to its end: a consumer that stops at Content-Length
// (net/http sending the body on, say) has passed every byte on before the
// mismatch shows. And it validates CRC64NVME, S3's default checksum, with
// hash/crc64, which has no fast path for that polynomial (about 1.4 GB/s a
// core; the import spent a fifth of its CPU there). Here the checksum is
// asked for with x-amz-checksum-mode (so S3 returns it), the SDK's own
// validation is turned off for this call, and the body is checked with
// hardware-accelerated CRCs (minio/crc64nvme for CRC64NVME) or the
// standard library's SHA and MD5.
//
// Objects without a full-object checksum (uploaded before S3 computed one,
// or with a composite multipart checksum) and ranged reads are streamed
// unchecked, as the SDK would.
func GetVerified(ctx context.Context, c Getter, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	opts := append([]func(*s3.Options){func(o *s3.Options) {
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("X-Amz-Checksum-Mode", "ENABLED"))
	}}, optFns...)
	out, err := c.GetObject(ctx, in, opts...)
	if err != nil {
		return nil, err
	}
	if in.Range != nil || in.PartNumber != nil || aws.ToInt64(out.ContentLength) <= 0 {
		return out, nil
	}
	algo, want, newHash := pickChecksum(out)
	if newHash == nil {
		return out, nil
	}
	out.Body = &verifyingBody{
		src: out.Body, name: "s3://" + aws.ToString(in.Bucket) + "/" + aws.ToString(in.Key),
		algo: algo, want: want, h: newHash(), left: *out.ContentLength,
	}
	return out, nil
}

// pickChecksum chooses the cheapest full-object checksum S3 returned. A
// composite one (a checksum of the parts' checksums) says nothing the bytes
// can be checked against; nor do the XXHASH ones, for which the standard
// library has no implementation: such objects stream unchecked.
func pickChecksum(out *s3.GetObjectOutput) (algo string, want []byte, newHash func() hash.Hash) {
	if out.ChecksumType == types.ChecksumTypeComposite {
		return "", nil, nil
	}
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	for _, c := range []struct {
		algo  string
		value *string
		new   func() hash.Hash
	}{
		{"CRC32C", out.ChecksumCRC32C, func() hash.Hash { return crc32.New(castagnoli) }},
		{"CRC32", out.ChecksumCRC32, func() hash.Hash { return crc32.NewIEEE() }},
		{"CRC64NVME", out.ChecksumCRC64NVME, func() hash.Hash { return crc64nvme.New() }},
		{"SHA256", out.ChecksumSHA256, sha256.New},
		{"SHA1", out.ChecksumSHA1, sha1.New},
		{"SHA512", out.ChecksumSHA512, sha512.New},
		{"MD5", out.ChecksumMD5, md5.New},
	} {
		v := aws.ToString(c.value)
		if v == "" || strings.Contains(v, "-") { // "-<parts>": composite, not of the whole object
			continue
		}
		sum, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(sum) != c.new().Size() {
			continue
		}
		return c.algo, sum, c.new
	}
	return "", nil, nil
}

// verifyingBody hashes what it reads and holds back the read that would
// complete the object until the checksum matches, so a reader that stops
// at the object's length never gets a complete, wrong object.
type verifyingBody struct {
	src  io.ReadCloser
	name string
	algo string
	want []byte
	h    hash.Hash
	left int64 // bytes still to come, by Content-Length
	err  error // sticky
}

func (b *verifyingBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.left == 0 {
		// Everything was checked and handed out: only EOF may follow.
		var one [1]byte
		if n, err := io.ReadFull(b.src, one[:]); n > 0 {
			b.err = fmt.Errorf("%s: %w: more bytes than its Content-Length", b.name, ErrChecksumMismatch)
		} else if err != io.EOF && err != io.ErrUnexpectedEOF {
			b.err = err
		} else {
			b.err = io.EOF
		}
		return 0, b.err
	}
	n, err := b.src.Read(p)
	if int64(n) > b.left {
		b.err = fmt.Errorf("%s: %w: more bytes than its Content-Length", b.name, ErrChecksumMismatch)
		return 0, b.err
	}
	b.h.Write(p[:n])
	b.left -= int64(n)
	if b.left == 0 {
		if got := b.h.Sum(nil); !bytes.Equal(got, b.want) {
			b.err = fmt.Errorf("%s: %w: %s is %s, S3 says %s", b.name, ErrChecksumMismatch, b.algo,
				base64.StdEncoding.EncodeToString(got), base64.StdEncoding.EncodeToString(b.want))
			return 0, b.err // the last bytes are withheld
		}
		if err == io.EOF {
			err = nil // EOF comes on the next Read, after the check
		}
		return n, err
	}
	if err == io.EOF {
		b.err = fmt.Errorf("%s: %w: %d bytes short of its Content-Length", b.name, io.ErrUnexpectedEOF, b.left)
		return 0, b.err
	}
	return n, err
}

func (b *verifyingBody) Close() error { return b.src.Close() }
