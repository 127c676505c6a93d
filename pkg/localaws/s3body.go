package localaws

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"strconv"
	"strings"
)

// s3ChecksumAlg is an additional checksum algorithm of S3 (x-amz-checksum-<name>).
type s3ChecksumAlg struct {
	name    string // lowercase, as in the header name
	size    int    // bytes of the raw digest
	newHash func() hash.Hash
}

var (
	s3CRC32CTable    = crc32.MakeTable(crc32.Castagnoli)
	s3CRC64NVMETable = crc64.MakeTable(0x9a6c9329ac4bc9b5) // the NVME polynomial, bit-reversed
)

var s3ChecksumAlgs = []s3ChecksumAlg{
	{"crc32", 4, func() hash.Hash { return crc32.NewIEEE() }},
	{"crc32c", 4, func() hash.Hash { return crc32.New(s3CRC32CTable) }},
	{"crc64nvme", 8, func() hash.Hash { return crc64.New(s3CRC64NVMETable) }},
	{"sha1", 20, sha1.New},
	{"sha256", 32, sha256.New},
	{"sha512", 64, sha512.New},
	{"md5", 16, md5.New},
}

func s3ChecksumAlgByName(name string) (s3ChecksumAlg, bool) {
	name = strings.ToLower(strings.TrimSpace(name))
	for _, a := range s3ChecksumAlgs {
		if a.name == name {
			return a, true
		}
	}
	return s3ChecksumAlg{}, false
}

// s3DefaultChecksum is what S3 computes for an object whose writer sent no checksum (since 2025).
const s3DefaultChecksum = "crc64nvme"

// Payload hash values of x-amz-content-sha256 with a meaning of their own.
const (
	s3UnsignedPayload = "UNSIGNED-PAYLOAD"
	s3StreamingPrefix = "STREAMING-"
)

var s3StreamingPayloads = map[string]bool{
	"STREAMING-UNSIGNED-PAYLOAD-TRAILER":         true,
	"STREAMING-AWS4-HMAC-SHA256-PAYLOAD":         true,
	"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER": true,
}

// s3MaxPutSize is the largest body of one PutObject or UploadPart.
const s3MaxPutSize = 5 << 30

// s3BodyOpts says how to read and check a request body.
type s3BodyOpts struct {
	// checksumHeaders: the x-amz-checksum-* and x-amz-sdk-checksum-algorithm headers describe this body
	// (true for PutObject, UploadPart, DeleteObjects; false for CompleteMultipartUpload, whose checksum
	// headers describe the whole object).
	checksumHeaders bool
	// requireAlg: the checksum algorithm the body must use if it names one, and that is computed
	// anyway (a multipart upload's algorithm, for its parts).
	requireAlg string
	// defaultAlg is computed when the client names no algorithm.
	defaultAlg string
	// maxSize bounds the decoded body; tooLarge is the error beyond it.
	maxSize  int64
	tooLarge *Error
}

// s3Body describes a body that was read and checked.
type s3Body struct {
	size int64
	md5  []byte
	// alg and sum are the additional checksum (raw digest); supplied when the client sent its value.
	alg      string
	sum      []byte
	supplied bool
}

func (b s3Body) etag() string { return `"` + hex.EncodeToString(b.md5) + `"` }

func (b s3Body) checksumB64() string {
	if b.alg == "" {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b.sum)
}

// readBody streams the request body into sink, decoding aws-chunked encoding, and verifies every
// integrity check the client sent: the x-amz-content-sha256 hash (or the chunk signatures), the
// decoded length, Content-MD5, and the x-amz-checksum-* header or trailer. On a mismatch it returns
// BadDigest (or XAmzContentSHA256Mismatch, or SignatureDoesNotMatch); whatever reached sink must then
// be discarded.
func (s *S3Server) readBody(req *s3Req, sink io.Writer, o s3BodyOpts) (s3Body, error) {
	h := req.r.Header
	var out s3Body
	if req.r.ContentLength > o.maxSize && o.tooLarge != nil {
		return out, o.tooLarge
	}

	// Which checksum the client sends, and which we compute.
	var supplied, suppliedVal string
	if o.checksumHeaders {
		for k, v := range h {
			lk := strings.ToLower(k)
			name, ok := strings.CutPrefix(lk, "x-amz-checksum-")
			if !ok || name == "algorithm" || name == "type" || name == "mode" || len(v) == 0 {
				continue
			}
			if supplied != "" {
				return out, &Error{Code: "InvalidRequest", Status: 400, Message: "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."}
			}
			supplied, suppliedVal = name, v[0]
		}
	}
	payload := req.sr.PayloadHash
	if payload == "" {
		payload = h.Get("X-Amz-Content-Sha256")
	}
	streaming := strings.HasPrefix(payload, s3StreamingPrefix)
	trailerAlg := ""
	if t := strings.TrimSpace(strings.ToLower(h.Get("X-Amz-Trailer"))); t != "" {
		if !streaming {
			return out, &Error{Code: "InvalidRequest", Status: 400, Message: "x-amz-trailer is only allowed with an aws-chunked (STREAMING-*) body"}
		}
		if strings.Contains(t, ",") {
			return out, &Error{Code: "InvalidRequest", Status: 400, Message: "Expecting a single x-amz-checksum- trailer. Multiple checksum Types are not allowed."}
		}
		name, ok := strings.CutPrefix(t, "x-amz-checksum-")
		if !ok {
			return out, &Error{Code: "InvalidRequest", Status: 400, Message: fmt.Sprintf("The trailer %q is not supported; only x-amz-checksum-* trailers are.", t)}
		}
		if supplied != "" {
			return out, &Error{Code: "InvalidRequest", Status: 400, Message: "Expecting a single x-amz-checksum- header or trailer, not both."}
		}
		trailerAlg, supplied = name, name
	}
	sdkAlg := ""
	if o.checksumHeaders {
		sdkAlg = strings.ToLower(h.Get("X-Amz-Sdk-Checksum-Algorithm"))
	}
	alg := supplied
	if alg == "" {
		alg = sdkAlg
	}
	if o.requireAlg != "" && alg != "" && alg != o.requireAlg {
		return out, &Error{Code: "InvalidRequest", Status: 400,
			Message: fmt.Sprintf("Checksum Type mismatch occurred, expected checksum Type: %s, actual checksum Type: %s", o.requireAlg, alg)}
	}
	if alg == "" {
		alg = o.requireAlg
	}
	if alg == "" {
		alg = o.defaultAlg
	}
	var sumAlg s3ChecksumAlg
	if alg != "" {
		a, ok := s3ChecksumAlgByName(alg)
		if !ok {
			return out, &Error{Code: "InvalidRequest", Status: 400, Message: fmt.Sprintf("Checksum algorithm %q is not supported by this server (use CRC32, CRC32C, CRC64NVME, SHA1, SHA256, SHA512 or MD5).", alg)}
		}
		sumAlg = a
	}
	var wantSum []byte
	if suppliedVal != "" {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(suppliedVal))
		if err != nil || len(raw) != sumAlg.size {
			return out, &Error{Code: "InvalidRequest", Status: 400, Message: fmt.Sprintf("Value for x-amz-checksum-%s header is invalid.", supplied)}
		}
		wantSum = raw
	}
	var wantMD5 []byte
	if v := h.Get("Content-Md5"); v != "" {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil || len(raw) != md5.Size {
			return out, &Error{Code: "InvalidDigest", Status: 400, Message: "The Content-MD5 you specified is not valid."}
		}
		wantMD5 = raw
	}

	// The body, decoded and checked against the signed payload hash.
	body := io.Reader(req.r.Body)
	var trailers func() map[string]string
	switch {
	case streaming:
		if !s3StreamingPayloads[payload] {
			return out, s3ErrNotImplemented("x-amz-content-sha256: " + payload)
		}
		body, trailers = s3ChunkedReader(body, req.sr, payload)
		if body == nil {
			return out, s3ErrNotImplemented("aws-chunked bodies")
		}
	case payload == s3UnsignedPayload || payload == "":
	case s3IsHexSHA256(payload):
		body = NewHashCheckingReader(body, strings.ToLower(payload))
	default:
		return out, s3ErrInvalidArgument("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] or the hex SHA-256 of the body")
	}

	m := md5.New()
	writers := []io.Writer{m}
	var sum hash.Hash
	if sumAlg.name != "" {
		sum = sumAlg.newHash()
		writers = append(writers, sum)
	}
	var sinkW *s3ErrWriter
	if sink != nil {
		sinkW = &s3ErrWriter{w: sink}
		writers = append(writers, sinkW)
	}
	limit := o.maxSize
	if limit <= 0 {
		limit = s3MaxPutSize
	}
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(io.MultiWriter(writers...), io.LimitReader(body, limit+1), buf)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return out, e
		}
		if sinkW != nil && sinkW.err != nil {
			return out, fmt.Errorf("store the body: %w", sinkW.err)
		}
		return out, &Error{Code: "IncompleteBody", Status: 400, Message: "You did not provide the number of bytes specified by the Content-Length HTTP header."}
	}
	if n > limit {
		if o.tooLarge != nil {
			return out, o.tooLarge
		}
		return out, &Error{Code: "EntityTooLarge", Status: 400, Message: "Your proposed upload exceeds the maximum allowed size"}
	}
	out.size = n
	out.md5 = m.Sum(nil)
	if streaming {
		if v := h.Get("X-Amz-Decoded-Content-Length"); v != "" {
			if want, err := strconv.ParseInt(v, 10, 64); err != nil || want != n {
				return out, &Error{Code: "IncompleteBody", Status: 400,
					Message: fmt.Sprintf("The decoded body has %d bytes but x-amz-decoded-content-length says %s.", n, v)}
			}
		}
	}
	if wantMD5 != nil && string(wantMD5) != string(out.md5) {
		return out, &Error{Code: "BadDigest", Status: 400, Message: "The Content-MD5 you specified did not match what we received."}
	}
	if trailerAlg != "" {
		var tv string
		if trailers != nil {
			for k, v := range trailers() {
				if strings.EqualFold(k, "x-amz-checksum-"+trailerAlg) {
					tv = v
				}
			}
		}
		if tv == "" {
			return out, &Error{Code: "MalformedTrailerError", Status: 400, Message: fmt.Sprintf("The request declared the trailer x-amz-checksum-%s but did not send it.", trailerAlg)}
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(tv))
		if err != nil || len(raw) != sumAlg.size {
			return out, &Error{Code: "InvalidRequest", Status: 400, Message: fmt.Sprintf("Value for x-amz-checksum-%s trailing header is invalid.", trailerAlg)}
		}
		wantSum = raw
	}
	if sum != nil {
		out.alg, out.sum = sumAlg.name, sum.Sum(nil)
		if wantSum != nil {
			if string(wantSum) != string(out.sum) {
				return out, &Error{Code: "BadDigest", Status: 400,
					Message: fmt.Sprintf("The %s you specified did not match the calculated checksum.", strings.ToUpper(sumAlg.name))}
			}
			out.supplied = true
		}
	}
	return out, nil
}

// s3ChunkedReader decodes an aws-chunked body (verifying chunk signatures when signed); the trailers
// are available once the body has been read to its end.
func s3ChunkedReader(body io.Reader, sr SignedRequest, _ string) (io.Reader, func() map[string]string) {
	return NewChunkedReader(body, sr)
}

// s3ReadSmallBody reads and checks a body of at most max bytes (XML documents).
func (s *S3Server) readSmallBody(req *s3Req, max int64, checksumHeaders bool) ([]byte, error) {
	var b strings.Builder
	_, err := s.readBody(req, &b, s3BodyOpts{checksumHeaders: checksumHeaders, maxSize: max,
		tooLarge: &Error{Code: "MalformedXML", Status: 400, Message: fmt.Sprintf("The XML document is larger than %d bytes.", max)}})
	if err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

func s3IsHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// s3ErrWriter remembers the error of its writer, to tell a failing disk from a failing client.
type s3ErrWriter struct {
	w   io.Writer
	err error
}

func (e *s3ErrWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// s3ContentEncoding drops aws-chunked, a transfer detail, from a Content-Encoding to store.
func s3ContentEncoding(v string) string {
	var keep []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" && !strings.EqualFold(p, "aws-chunked") {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, ",")
}
