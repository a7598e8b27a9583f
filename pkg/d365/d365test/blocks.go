package d365test

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net/http"
	"os"
)

// Block blobs uploaded in blocks, as Azure's Put Block and Put Block List
// take them: blocks are staged uncommitted, under IDs the client chooses,
// and only a block list makes them the blob's content (in the list's
// order). Until then the blob is what it was before (nothing, for a fresh
// SAS URL), so a package whose upload stopped half-way is never seen.

// maxBlockSize is Azure's largest block (version 2019-12-12 and later).
const maxBlockSize = 4000 << 20

// maxBlockIDBytes is the longest block ID, decoded.
const maxBlockIDBytes = 64

// stagedBlock is an uncommitted block, kept on disk.
type stagedBlock struct {
	path string
	size int64
}

// blobPutBlock is Put Block: PUT <blob>?comp=block&blockid=<base64>.
func (e *Emulator) blobPutBlock(w http.ResponseWriter, r *http.Request, c *call) {
	name := blobName(c.seg)
	if !e.checkSAS(w, r, name, "w") {
		return
	}
	id := r.URL.Query().Get("blockid")
	raw, err := base64.StdEncoding.DecodeString(id)
	if id == "" || err != nil || len(raw) > maxBlockIDBytes {
		writeBlobError(w, http.StatusBadRequest, "InvalidQueryParameterValue",
			"Value for one of the query parameters specified in the request URI is invalid.", "")
		return
	}
	if r.ContentLength < 0 {
		writeBlobError(w, http.StatusLengthRequired, "MissingContentLengthHeader", "Content-Length header value must be specified.", "")
		return
	}
	if r.ContentLength > maxBlockSize {
		writeBlobError(w, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", "The request body is too large and exceeds the maximum permissible limit.", "")
		return
	}
	e.mu.Lock()
	sameLength := true
	for other := range e.st.staged[name] {
		sameLength = sameLength && len(other) == len(id)
	}
	e.mu.Unlock()
	if !sameLength {
		// Azure: every block ID of a blob has the same length.
		writeBlobError(w, http.StatusBadRequest, "InvalidBlobOrBlock", "The specified blob or block content is invalid.", "")
		return
	}
	path, n, sum, ok := e.storeBody(w, r, c)
	if !ok {
		return
	}
	e.mu.Lock()
	if e.st.staged[name] == nil {
		e.st.staged[name] = map[string]stagedBlock{}
	}
	if old, ok := e.st.staged[name][id]; ok {
		os.Remove(old.path)
	}
	e.st.staged[name][id] = stagedBlock{path: path, size: n}
	e.mu.Unlock()
	h := w.Header()
	h.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum))
	h.Set("x-ms-request-id", newGUID())
	h.Set("x-ms-version", "2021-08-06")
	h.Set("x-ms-request-server-encrypted", "true")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// storeBody writes a request body of Content-Length bytes to a temporary
// file, honouring a ResetAfterBytes fault. On failure it has answered (or
// dropped the connection).
func (e *Emulator) storeBody(w http.ResponseWriter, r *http.Request, c *call) (path string, n int64, sum []byte, ok bool) {
	f, err := os.CreateTemp(e.blobDir, "block-*")
	if err != nil {
		writeBlobError(w, http.StatusInternalServerError, "InternalError", err.Error(), "")
		return "", 0, nil, false
	}
	h := md5.New()
	sink := io.MultiWriter(f, h)
	if c.fault != nil && c.fault.ResetAfterBytes > 0 {
		io.CopyN(sink, r.Body, c.fault.ResetAfterBytes)
		f.Close()
		os.Remove(f.Name())
		panic(http.ErrAbortHandler)
	}
	n, err = io.Copy(sink, r.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || n != r.ContentLength {
		os.Remove(f.Name())
		writeBlobError(w, http.StatusBadRequest, "InvalidInput", "The body did not match Content-Length.", "")
		return "", 0, nil, false
	}
	return f.Name(), n, h.Sum(nil), true
}

// blockList is Put Block List's body.
type blockList struct {
	XMLName xml.Name `xml:"BlockList"`
	Entries []struct {
		XMLName xml.Name
		ID      string `xml:",chardata"`
	} `xml:",any"`
}

// blobPutBlockList is Put Block List: the staged blocks named, in order,
// become the blob. Committed (blocks of the blob as it is) is not kept
// apart by the emulator, so only Latest and Uncommitted entries resolve.
func (e *Emulator) blobPutBlockList(w http.ResponseWriter, r *http.Request, c *call) {
	name := blobName(c.seg)
	if !e.checkSAS(w, r, name, "w") {
		return
	}
	var list blockList
	if err := xml.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&list); err != nil {
		writeBlobError(w, http.StatusBadRequest, "InvalidXmlDocument", "XML specified is not syntactically valid.", "")
		return
	}
	e.mu.Lock()
	staged := e.st.staged[name]
	var parts []stagedBlock
	for _, ent := range list.Entries {
		b, ok := staged[ent.ID]
		if !ok || (ent.XMLName.Local != "Latest" && ent.XMLName.Local != "Uncommitted") {
			e.mu.Unlock()
			writeBlobError(w, http.StatusBadRequest, "InvalidBlockList", "The specified block list is invalid.", "")
			return
		}
		parts = append(parts, b)
	}
	e.mu.Unlock()
	path, size, sum, err := e.concat(parts)
	if err != nil {
		writeBlobError(w, http.StatusInternalServerError, "InternalError", err.Error(), "")
		return
	}
	b := &blob{path: path, size: size, md5: sum, modified: e.clock.Now(), etag: newETag()}
	e.mu.Lock()
	if old := e.st.blobs[name]; old != nil && old.path != "" {
		os.Remove(old.path)
	}
	e.st.blobs[name] = b
	for _, s := range e.st.staged[name] {
		os.Remove(s.path)
	}
	delete(e.st.staged, name)
	e.mu.Unlock()
	h := w.Header()
	h.Set("ETag", b.etag)
	h.Set("Last-Modified", b.modified.Format(http.TimeFormat))
	h.Set("x-ms-request-id", newGUID())
	h.Set("x-ms-version", "2021-08-06")
	h.Set("x-ms-request-server-encrypted", "true")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// concat joins staged blocks into one new file.
func (e *Emulator) concat(parts []stagedBlock) (string, int64, []byte, error) {
	f, err := os.CreateTemp(e.blobDir, "blob-*")
	if err != nil {
		return "", 0, nil, err
	}
	h := md5.New()
	var n int64
	for _, p := range parts {
		src, err := os.Open(p.path)
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			return "", 0, nil, err
		}
		m, err := io.Copy(io.MultiWriter(f, h), src)
		src.Close()
		n += m
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			return "", 0, nil, err
		}
	}
	if err := f.Close(); err != nil {
		return "", 0, nil, err
	}
	return f.Name(), n, h.Sum(nil), nil
}

// StagedBlocks is how many uncommitted blocks a blob has (an upload that
// stopped before its block list).
func (e *Emulator) StagedBlocks(name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.st.staged[name])
}
