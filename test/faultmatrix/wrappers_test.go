package faultmatrix_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/local/localrun"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// flakyS3 is the S3 client of the enqueue function: GetObject of a source
// file (under inbound/) fails when fail says so, as S3 does with a 500
// after the SDK's own retries. n is how many reads of that key came before.
type flakyS3 struct {
	enqueue.S3
	mu     sync.Mutex
	fail   func(key string, n int) bool
	reads  map[string]int
	failed map[string]int
	// cut: the read's body breaks halfway through (S3's connection reset
	// mid-stream), counted in cuts.
	cut  func(key string, n int) bool
	cuts int
}

var _ enqueue.S3 = (*flakyS3)(nil)

func (f *flakyS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	key := aws.ToString(in.Key)
	if strings.HasPrefix(key, "inbound/") {
		f.mu.Lock()
		n := f.reads[key]
		f.reads[key]++
		bad := f.fail != nil && f.fail(key, n)
		if bad {
			f.failed[key]++
		}
		cut := !bad && f.cut != nil && f.cut(key, n)
		if cut {
			f.cuts++
		}
		f.mu.Unlock()
		if bad {
			return nil, &smithy.GenericAPIError{Code: "InternalError", Message: "We encountered an internal error. Please try again. (injected)"}
		}
		if cut {
			out, err := f.S3.GetObject(ctx, in, opts...)
			if err == nil {
				out.Body = &cutBody{ReadCloser: out.Body, left: aws.ToInt64(out.ContentLength) / 2}
			}
			return out, err
		}
	}
	return f.S3.GetObject(ctx, in, opts...)
}

// cutBody hands out left bytes, then fails as a reset connection does.
type cutBody struct {
	io.ReadCloser
	left int64
}

func (c *cutBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("read tcp: connection reset by peer (injected)")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= int64(n)
	return n, err
}

// failures is how many GetObject calls were failed, in all.
func (f *flakyS3) failures() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, v := range f.failed {
		n += v
	}
	return n
}

// afterAccept is what happens after F&O accepted a file, in a simulation.
type afterAccept int

const (
	goOn afterAccept = iota
	// die: the enqueue process dies before F&O's message ID is recorded
	// in the marker. The runtime reports a function error and the whole
	// batch comes back.
	die
	// answer502: F&O stored the file, but the answer that comes back is a
	// 502 (a gateway in front of F&O failing after the fact). The client
	// reports an F&O 5xx, which says "not taken", so the file is retried:
	// the one way left for F&O to get a file twice (README, "At most once").
	answer502
)

// crashingEnqueuer is the F&O client of the enqueue function. It calls the
// real client; then, when then says so, it dies or lies, although F&O
// accepted the file. For package imports (it is an
// enqueue.PackageImporter too), importThen does the same after F&O
// answered ImportFromPackage.
type crashingEnqueuer struct {
	inner enqueue.Enqueuer
	pkgs  enqueue.PackageImporter
	then  func(externalID string, n int) afterAccept // n: accepted enqueues of this file before
	// importThen says what happens after ImportFromPackage was answered
	// for the package at blob (the write URL's file name).
	importThen func(blob string, n int) afterAccept
	mu         sync.Mutex
	calls      map[string]int
	hit        map[afterAccept]map[string]int // what happened -> external ID -> times
	imports    map[string]int                 // execution ID -> deaths after F&O answered ImportFromPackage
}

var _ enqueue.PackageImporter = (*crashingEnqueuer)(nil)

func (c *crashingEnqueuer) GetAzureWriteURL(ctx context.Context, name string) (*d365.BlobWriteURL, error) {
	return c.pkgs.GetAzureWriteURL(ctx, name)
}

func (c *crashingEnqueuer) UploadPackageBlocks(ctx context.Context, blobURL string, body io.Reader, size, blockSize int64) error {
	return c.pkgs.UploadPackageBlocks(ctx, blobURL, body, size, blockSize)
}

func (c *crashingEnqueuer) ImportFromPackage(ctx context.Context, in d365.ImportPackageRequest) (string, error) {
	id, err := c.pkgs.ImportFromPackage(ctx, in)
	if err != nil || c.importThen == nil {
		return id, err
	}
	blob := in.PackageURL
	if u, perr := url.Parse(blob); perr == nil {
		blob = path.Base(u.Path)
	}
	c.mu.Lock()
	n := c.calls["import "+in.ExecutionID]
	c.calls["import "+in.ExecutionID]++
	what := c.importThen(blob, n)
	if what == die {
		if c.imports == nil {
			c.imports = map[string]int{}
		}
		c.imports[id]++
	}
	c.mu.Unlock()
	if what == die {
		panic(fmt.Sprintf("simulated crash: F&O accepted the package import as execution %s, the process died before recording it", id))
	}
	return id, nil
}

func (c *crashingEnqueuer) Enqueue(ctx context.Context, req d365.EnqueueRequest) (string, error) {
	id, err := c.inner.Enqueue(ctx, req)
	if err != nil || c.then == nil {
		return id, err
	}
	c.mu.Lock()
	n := c.calls[req.ExternalID]
	c.calls[req.ExternalID]++
	what := c.then(req.ExternalID, n)
	if what != goOn {
		c.hit[what][req.ExternalID]++
	}
	c.mu.Unlock()
	switch what {
	case die:
		panic(fmt.Sprintf("simulated crash: F&O accepted %s as message %s, the process died before recording it", req.ExternalID, id))
	case answer502:
		return "", &d365.Error{Op: "enqueue", StatusCode: 502, Message: "Bad Gateway (simulated: F&O stored the file as " + id + ")"}
	}
	return id, nil
}

// importDeaths returns, per execution ID, how often the process died
// after F&O answered ImportFromPackage.
func (c *crashingEnqueuer) importDeaths() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.imports {
		out[k] = v
	}
	return out
}

// times returns, per external ID, how often what happened.
func (c *crashingEnqueuer) times(what afterAccept) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.hit[what] {
		out[k] = v
	}
	return out
}

// fifoRecorder is the SQS client of everything that sends to the FIFO
// import queue (the router's and the sweep's release requests, the release
// passes' files). It records the order in which the queue accepted each
// file, per message group: that order is what the per-entity ordering
// keeps. A file's position is that of its first accepted message; a later
// one with the same deduplication ID is a duplicate (SQS drops it within 5
// minutes; moto only while the first is still queued, and then the
// idempotency marker has to stop it).
type fifoRecorder struct {
	inner    release.Sender
	mu       sync.Mutex
	seen     map[string]bool     // deduplication IDs accepted
	order    map[string][]string // group -> keys, in FIFO order
	group    map[string]string   // key -> group
	pos      map[string]int      // key -> position in its group
	sends    int                 // file entries accepted, duplicates included
	requests int                 // release requests accepted, duplicates included
}

var _ release.Sender = (*fifoRecorder)(nil)

func (r *fifoRecorder) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	out, err := r.inner.SendMessageBatch(ctx, in, opts...)
	if err != nil {
		return out, err
	}
	ok := map[string]bool{}
	for _, s := range out.Successful {
		ok[aws.ToString(s.Id)] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range in.Entries {
		if !ok[aws.ToString(e.Id)] {
			continue
		}
		msg, err := importmsg.Decode([]byte(aws.ToString(e.MessageBody)))
		if err != nil {
			continue
		}
		if msg.Release != nil {
			r.requests++
			continue
		}
		r.sends++
		dedup := aws.ToString(e.MessageDeduplicationId)
		if r.seen[dedup] {
			continue
		}
		r.seen[dedup] = true
		fm := msg.File
		g := aws.ToString(e.MessageGroupId)
		r.group[fm.Key] = g
		r.pos[fm.Key] = len(r.order[g])
		r.order[g] = append(r.order[g], fm.Key)
	}
	return out, nil
}

func (r *fifoRecorder) position(key string) (group string, pos int, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.group[key]
	return g, r.pos[key], ok
}

// lossyQueue is the enqueue mapping's view of the FIFO queue, on top of a
// localrun.MotoFIFO (which keeps moto's FIFO order when several messages
// of a group time out together).
//
// A delete that lose says to lose is reported done but never reaches SQS,
// so the message comes back after its visibility timeout although the
// function finished it (the same FIFO message delivered again).
type lossyQueue struct {
	localrun.SQSQueue
	lose   func(body string) bool
	mu     sync.Mutex
	lost   int
	bodies map[string]string // receipt handle -> body, of messages received and not deleted
}

func (q *lossyQueue) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	out, err := q.SQSQueue.ReceiveMessage(ctx, in, opts...)
	if err == nil {
		q.mu.Lock()
		if q.bodies == nil {
			q.bodies = map[string]string{}
		}
		for _, m := range out.Messages {
			q.bodies[aws.ToString(m.ReceiptHandle)] = aws.ToString(m.Body)
		}
		q.mu.Unlock()
	}
	return out, err
}

func (q *lossyQueue) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	var keep []sqstypes.DeleteMessageBatchRequestEntry
	var lost []sqstypes.DeleteMessageBatchResultEntry
	q.mu.Lock()
	for _, e := range in.Entries {
		receipt := aws.ToString(e.ReceiptHandle)
		body := q.bodies[receipt]
		delete(q.bodies, receipt)
		if q.lose != nil && q.lose(body) {
			q.lost++
			lost = append(lost, sqstypes.DeleteMessageBatchResultEntry{Id: e.Id})
			continue
		}
		keep = append(keep, e)
	}
	q.mu.Unlock()
	out := &sqs.DeleteMessageBatchOutput{}
	if len(keep) > 0 {
		cp := *in
		cp.Entries = keep
		o, err := q.SQSQueue.DeleteMessageBatch(ctx, &cp, opts...)
		if err != nil {
			return nil, err
		}
		out = o
	}
	out.Successful = append(out.Successful, lost...)
	return out, nil
}

func (q *lossyQueue) lostDeletes() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lost
}
