package s3fake

// Generated content: a block of pseudo-random bytes repeated, so objects of
// any size cost no memory and their checksum can be computed once.

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc64"
	"io"
	"math/rand/v2"
)

// crcTable is CRC64NVME's, computed with the standard library so the fake
// does not check the functions with the code they use themselves.
var crcTable = crc64.MakeTable(0x9a6c9329ac4bc9b5)

func crcString(sum uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], sum)
	return base64.StdEncoding.EncodeToString(b[:])
}

// Pattern is a 1 MiB block of pseudo-random bytes, the same for a given
// seed; incompressible, so nothing on the way can shortcut it.
func Pattern(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	b := make([]byte, 1<<20)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
}

// PatternCRC is the CRC64NVME of size bytes of block repeated, base64 as S3
// sends it.
func PatternCRC(block []byte, size int64) string {
	var sum uint64
	for left := size; left > 0; {
		n := min(left, int64(len(block)))
		sum = crc64.Update(sum, crcTable, block[:n])
		left -= n
	}
	return crcString(sum)
}

// WritePattern writes size bytes of block repeated.
func WritePattern(w io.Writer, block []byte, size int64) (int64, error) {
	return newPatternReader(block, 0, size).WriteTo(w)
}

// PatternReader reads size bytes of block repeated.
func PatternReader(block []byte, size int64) io.Reader { return newPatternReader(block, 0, size) }

// patternReader reads block repeated from offset off of the repetition,
// left bytes in all.
type patternReader struct {
	block []byte
	off   int
	left  int64
}

func newPatternReader(block []byte, off, left int64) *patternReader {
	return &patternReader{block: block, off: int(off % int64(len(block))), left: left}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.left)]
	n := copy(b, p.block[p.off:])
	p.off = (p.off + n) % len(p.block)
	p.left -= int64(n)
	return n, nil
}

// WriteTo writes the block's slices as they are, without a copy.
func (p *patternReader) WriteTo(w io.Writer) (int64, error) {
	var done int64
	for p.left > 0 {
		end := p.off + int(min(int64(len(p.block)-p.off), p.left))
		n, err := w.Write(p.block[p.off:end])
		done += int64(n)
		p.off = (p.off + n) % len(p.block)
		p.left -= int64(n)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}
