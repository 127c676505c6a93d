package localaws

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	s3MaxKeyLen       = 1024
	s3MaxUserMetaSize = 2 << 10
	s3ISOTime         = "2006-01-02T15:04:05.000Z"
)

var s3StorageClasses = map[string]bool{
	"STANDARD": true, "REDUCED_REDUNDANCY": true, "STANDARD_IA": true, "ONEZONE_IA": true,
	"INTELLIGENT_TIERING": true, "GLACIER": true, "DEEP_ARCHIVE": true, "GLACIER_IR": true,
	"OUTPOSTS": true, "SNOW": true, "EXPRESS_ONEZONE": true,
}

func s3CheckKey(key string) error {
	if len(key) > s3MaxKeyLen {
		return &Error{Code: "KeyTooLongError", Status: 400, Message: "Your key is too long (at most 1024 bytes)."}
	}
	return nil
}

// objectMetaFromHeaders reads what a write (PutObject, CreateMultipartUpload, CopyObject with
// REPLACE) says about the object to store.
func (s *S3Server) objectMetaFromHeaders(req *s3Req) (*s3ObjectMeta, error) {
	h := req.r.Header
	om := &s3ObjectMeta{
		Key:                req.key,
		ContentType:        h.Get("Content-Type"),
		ContentEncoding:    s3ContentEncoding(h.Get("Content-Encoding")),
		ContentDisposition: h.Get("Content-Disposition"),
		ContentLanguage:    h.Get("Content-Language"),
		CacheControl:       h.Get("Cache-Control"),
		Expires:            h.Get("Expires"),
		Owner:              req.callerAccount(),
	}
	if om.ContentType == "" {
		om.ContentType = "binary/octet-stream"
	}
	metaSize := 0
	for k, v := range h {
		lk := strings.ToLower(k)
		if name, ok := strings.CutPrefix(lk, "x-amz-meta-"); ok && len(v) > 0 && name != "" {
			if om.UserMeta == nil {
				om.UserMeta = map[string]string{}
			}
			om.UserMeta[name] = strings.Join(v, ",")
			metaSize += len(name) + len(om.UserMeta[name])
		}
	}
	if metaSize > s3MaxUserMetaSize {
		return nil, &Error{Code: "MetadataTooLarge", Status: 400, Message: "Your metadata headers exceed the maximum allowed metadata size (2 KB)."}
	}
	if err := s3ApplyStorageAndSSE(h, om); err != nil {
		return nil, err
	}
	acl, grants, err := s3ACLFromHeaders(h)
	if err != nil {
		return nil, err
	}
	om.ACL, om.Grants = acl, grants
	return om, nil
}

// s3ApplyStorageAndSSE sets the storage class and server-side encryption a write asks for. Like S3
// since January 2023, objects are encrypted with SSE-S3 (AES256) when nothing else is asked.
func s3ApplyStorageAndSSE(h http.Header, om *s3ObjectMeta) error {
	if sc := h.Get("X-Amz-Storage-Class"); sc != "" {
		if !s3StorageClasses[sc] {
			return &Error{Code: "InvalidStorageClass", Status: 400, Message: "The storage class you specified is not valid"}
		}
		om.StorageClass = sc
	}
	if h.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm") != "" {
		return s3ErrNotImplemented("server-side encryption with customer-provided keys (SSE-C)")
	}
	switch sse := h.Get("X-Amz-Server-Side-Encryption"); sse {
	case "":
		om.SSE = "AES256"
	case "AES256", "aws:kms", "aws:kms:dsse":
		om.SSE = sse
		if sse != "AES256" {
			om.SSEKMSKeyID = h.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id")
		}
	default:
		return s3ErrInvalidArgument(fmt.Sprintf("The server-side encryption %q is not valid (use AES256, aws:kms or aws:kms:dsse).", sse))
	}
	return nil
}

// s3WriteCondFrom reads the conditions of a write: If-None-Match: * and If-Match: <etag>.
func s3WriteCondFrom(h http.Header) (s3WriteCond, error) {
	var c s3WriteCond
	switch v := strings.TrimSpace(h.Get("If-None-Match")); v {
	case "":
	case "*":
		c.IfNoneMatchStar = true
	default:
		return c, s3ErrNotImplemented("If-None-Match on a write supports only *")
	}
	c.IfMatch = strings.TrimSpace(h.Get("If-Match"))
	return c, nil
}

// objectAccess checks the bucket, its region and the action on the request's key.
func (s *S3Server) objectAccess(req *s3Req, action string) (Bucket, *s3BucketState, error) {
	b, bs, err := s.bucketFor(req, req.bucket, false)
	if err != nil {
		return b, nil, err
	}
	if err := s3CheckKey(req.key); err != nil {
		return b, nil, err
	}
	if err := s.authorize(req, &b, action, s3ObjectARN(req.bucket, req.key)); err != nil {
		return b, nil, err
	}
	return b, bs, nil
}

// writeAccess is objectAccess for a write, which also needs s3:PutObjectAcl when it carries an ACL.
func (s *S3Server) writeAccess(req *s3Req) (Bucket, *s3BucketState, error) {
	b, bs, err := s.objectAccess(req, "s3:PutObject")
	if err != nil {
		return b, nil, err
	}
	if s3SetsACL(req.r.Header) {
		if err := s.authorize(req, &b, "s3:PutObjectAcl", s3ObjectARN(req.bucket, req.key)); err != nil {
			return b, nil, err
		}
	}
	return b, bs, nil
}

// receiveToTemp streams the body into a new temp file, verified; the caller owns the file's removal.
func (s *S3Server) receiveToTemp(req *s3Req, o s3BodyOpts) (string, s3Body, error) {
	f, err := s.st.tempFile("body-*")
	if err != nil {
		return "", s3Body{}, err
	}
	body, err := s.readBody(req, f, o)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", body, err
	}
	return f.Name(), body, nil
}

func (s *S3Server) putObject(req *s3Req) error {
	_, bs, err := s.writeAccess(req)
	if err != nil {
		return err
	}
	cond, err := s3WriteCondFrom(req.r.Header)
	if err != nil {
		return err
	}
	cur, _ := bs.get(req.key)
	if err := cond.check(cur, req.key); err != nil {
		return err // before reading a body that could not be stored
	}
	om, err := s.objectMetaFromHeaders(req)
	if err != nil {
		return err
	}
	tmp, body, err := s.receiveToTemp(req, s3BodyOpts{checksumHeaders: true, defaultAlg: s3DefaultChecksum, maxSize: s3MaxPutSize,
		tooLarge: &Error{Code: "EntityTooLarge", Status: 400, Message: "Your proposed upload exceeds the maximum allowed size (5 GB); use a multipart upload."}})
	if err != nil {
		return err
	}
	om.Size, om.ETag, om.LastModified = body.size, body.etag(), s.cfg.Now().UTC()
	om.ChecksumAlgorithm, om.Checksum, om.ChecksumType = body.alg, body.checksumB64(), "FULL_OBJECT"
	if err := s.st.commit(bs, tmp, om, cond); err != nil {
		return err
	}
	h := req.w.Header()
	h.Set("ETag", om.ETag)
	s3SetSSEHeaders(h, om)
	if om.Checksum != "" {
		h.Set("X-Amz-Checksum-"+om.ChecksumAlgorithm, om.Checksum)
		h.Set("X-Amz-Checksum-Type", om.ChecksumType)
	}
	req.w.WriteHeader(http.StatusOK)
	return nil
}

func s3SetSSEHeaders(h http.Header, om *s3ObjectMeta) {
	if om.SSE != "" {
		h.Set("X-Amz-Server-Side-Encryption", om.SSE)
	}
	if om.SSEKMSKeyID != "" {
		h.Set("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id", om.SSEKMSKeyID)
	}
}

// missingObject is the error for a key that does not exist: NoSuchKey if the caller may list the
// bucket, else AccessDenied, as S3 does so that a caller cannot probe for keys it cannot list.
func (s *S3Server) missingObject(req *s3Req, b *Bucket) error {
	action := req.action
	if err := s.authorize(req, b, "s3:ListBucket", s3BucketARN(req.bucket)); err != nil {
		return err
	}
	req.action = action
	return s3ErrNoSuchKey(req.key)
}

func (s *S3Server) getObject(req *s3Req) error {
	b, bs, err := s.objectAccess(req, "s3:GetObject")
	if err != nil {
		return err
	}
	om, f, err := s.st.open(bs, req.key)
	if err != nil {
		return err
	}
	if om == nil {
		return s.missingObject(req, &b)
	}
	defer f.Close()
	h := req.w.Header()
	q := req.q

	switch s3ReadConditions(req.r.Header, "", om) {
	case http.StatusNotModified:
		h.Set("ETag", om.ETag)
		h.Set("Last-Modified", om.LastModified.UTC().Format(http.TimeFormat))
		req.w.WriteHeader(http.StatusNotModified)
		return nil
	case http.StatusPreconditionFailed:
		return s3ErrPrecondition("If-Match/If-Unmodified-Since")
	}

	// What part of the object: all of it, a Range, or a part of a multipart upload.
	start, length, partial := int64(0), om.Size, false
	wholeChecksum := true
	rangeHdr := req.r.Header.Get("Range")
	if pn := q.Get("partNumber"); pn != "" {
		if rangeHdr != "" {
			return &Error{Code: "InvalidRequest", Status: 400, Message: "Cannot specify both Range header and partNumber query parameter"}
		}
		n, err := strconv.Atoi(pn)
		if err != nil || n < 1 || n > 10000 {
			return s3ErrInvalidArgument("Part number must be an integer between 1 and 10000, inclusive")
		}
		parts := om.PartSizes
		if len(parts) == 0 {
			parts = []int64{om.Size}
		}
		if n > len(parts) {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", om.Size))
			return &Error{Code: "InvalidPartNumber", Status: http.StatusRequestedRangeNotSatisfiable, Message: "The requested partnumber is not satisfiable"}
		}
		for i := 0; i < n-1; i++ {
			start += parts[i]
		}
		length = parts[n-1]
		if len(om.PartSizes) > 0 {
			h.Set("X-Amz-Mp-Parts-Count", strconv.Itoa(len(om.PartSizes)))
			partial, wholeChecksum = true, false
		}
	} else if rangeHdr != "" {
		st, ln, ok, err := s3ParseRange(rangeHdr, om.Size)
		if err != nil {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", om.Size))
			return err
		}
		if ok {
			start, length, partial, wholeChecksum = st, ln, true, false
		}
	}

	s3SetObjectHeaders(h, om)
	if strings.EqualFold(req.r.Header.Get("X-Amz-Checksum-Mode"), "ENABLED") && om.Checksum != "" && wholeChecksum {
		// Only a checksum of exactly the bytes returned: the SDK validates it against the body.
		h.Set("X-Amz-Checksum-"+om.ChecksumAlgorithm, om.Checksum)
		h.Set("X-Amz-Checksum-Type", om.ChecksumType)
	}
	for param, header := range map[string]string{
		"response-content-type": "Content-Type", "response-content-language": "Content-Language",
		"response-expires": "Expires", "response-cache-control": "Cache-Control",
		"response-content-disposition": "Content-Disposition", "response-content-encoding": "Content-Encoding",
	} {
		if v := q.Get(param); v != "" {
			h.Set(header, v)
		}
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	status := http.StatusOK
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, om.Size))
		status = http.StatusPartialContent
	}
	req.w.WriteHeader(status)
	if req.r.Method == http.MethodHead || length == 0 {
		return nil
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	if _, err := io.CopyBuffer(req.w, io.LimitReader(f, length), buf); err != nil {
		return fmt.Errorf("send object: %w", err)
	}
	return nil
}

// s3SetObjectHeaders sets the headers GET and HEAD return for an object.
func s3SetObjectHeaders(h http.Header, om *s3ObjectMeta) {
	h.Set("ETag", om.ETag)
	h.Set("Last-Modified", om.LastModified.UTC().Format(http.TimeFormat))
	h.Set("Content-Type", om.ContentType)
	h.Set("Accept-Ranges", "bytes")
	for k, v := range map[string]string{
		"Content-Encoding": om.ContentEncoding, "Content-Disposition": om.ContentDisposition,
		"Content-Language": om.ContentLanguage, "Cache-Control": om.CacheControl, "Expires": om.Expires,
	} {
		if v != "" {
			h.Set(k, v)
		}
	}
	for k, v := range om.UserMeta {
		h.Set("X-Amz-Meta-"+k, v)
	}
	if om.StorageClass != "" && om.StorageClass != "STANDARD" {
		h.Set("X-Amz-Storage-Class", om.StorageClass)
	}
	s3SetSSEHeaders(h, om)
}

// s3ReadConditions judges If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since (with
// prefix "X-Amz-Copy-Source-" the copy-source variants) as S3 does: 0 to proceed, else 304 or 412.
func s3ReadConditions(h http.Header, prefix string, om *s3ObjectMeta) int {
	lm := om.LastModified.UTC().Truncate(time.Second)
	if v := h.Get(prefix + "If-Match"); v != "" {
		if !s3ETagListMatches(v, om.ETag) {
			return http.StatusPreconditionFailed
		}
	} else if v := h.Get(prefix + "If-Unmodified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && lm.After(t) {
			return http.StatusPreconditionFailed
		}
	}
	if v := h.Get(prefix + "If-None-Match"); v != "" {
		if s3ETagListMatches(v, om.ETag) {
			return http.StatusNotModified
		}
	} else if v := h.Get(prefix + "If-Modified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && !lm.After(t) {
			return http.StatusNotModified
		}
	}
	return 0
}

// s3ETagListMatches reports whether an If-Match/If-None-Match value ("*" or a list of ETags) matches.
func s3ETagListMatches(list, etag string) bool {
	want := strings.Trim(etag, `"`)
	for _, v := range strings.Split(list, ",") {
		v = strings.TrimSpace(v)
		if v == "*" {
			return true
		}
		v = strings.TrimPrefix(v, "W/")
		if strings.Trim(v, `"`) == want {
			return true
		}
	}
	return false
}

// s3ParseRange parses a single-range "bytes=" header against size. ok is false when the header is to be
// ignored (not bytes, several ranges, malformed), as S3 ignores them; an unsatisfiable range is an
// InvalidRange error.
func s3ParseRange(v string, size int64) (start, length int64, ok bool, err error) {
	spec, found := strings.CutPrefix(strings.TrimSpace(v), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, nil
	}
	invalid := &Error{Code: "InvalidRange", Status: http.StatusRequestedRangeNotSatisfiable, Message: "The requested range is not satisfiable"}
	if first == "" {
		n, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || n < 0 {
			return 0, 0, false, nil
		}
		if n == 0 || size == 0 {
			return 0, 0, false, invalid
		}
		n = min(n, size)
		return size - n, n, true, nil
	}
	a, perr := strconv.ParseInt(first, 10, 64)
	if perr != nil || a < 0 {
		return 0, 0, false, nil
	}
	b := size - 1
	if last != "" {
		b, perr = strconv.ParseInt(last, 10, 64)
		if perr != nil || b < a {
			return 0, 0, false, nil
		}
		b = min(b, size-1)
	}
	if a >= size {
		return 0, 0, false, invalid
	}
	return a, b - a + 1, true, nil
}

func (s *S3Server) deleteObject(req *s3Req) error {
	_, bs, err := s.objectAccess(req, "s3:DeleteObject")
	if err != nil {
		return err
	}
	if err := s.st.remove(bs, req.key); err != nil {
		return err
	}
	req.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *S3Server) deleteObjects(req *s3Req) error {
	b, bs, err := s.bucketFor(req, req.bucket, false)
	if err != nil {
		return err
	}
	body, err := s.readSmallBody(req, 2<<20, true)
	if err != nil {
		return err
	}
	var in struct {
		Objects []struct {
			Key       string `xml:"Key"`
			VersionID string `xml:"VersionId"`
		} `xml:"Object"`
		Quiet bool `xml:"Quiet"`
	}
	if err := xml.Unmarshal(body, &in); err != nil {
		return s3ErrMalformedXML(err.Error())
	}
	if len(in.Objects) == 0 || len(in.Objects) > 1000 {
		return s3ErrMalformedXML("a Delete request names 1 to 1000 objects")
	}
	type deleted struct {
		Key string `xml:"Key"`
	}
	type failed struct {
		Key     string `xml:"Key"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	var out struct {
		XMLName xml.Name  `xml:"DeleteResult"`
		Xmlns   string    `xml:"xmlns,attr"`
		Deleted []deleted `xml:"Deleted"`
		Errors  []failed  `xml:"Error"`
	}
	out.Xmlns = s3XMLNS
	for _, o := range in.Objects {
		err := s3CheckKey(o.Key)
		if err == nil && o.Key == "" {
			err = s3ErrInvalidArgument("An object key must not be empty.")
		}
		if err == nil {
			err = s.authorize(req, &b, "s3:DeleteObject", s3ObjectARN(req.bucket, o.Key))
		}
		if err == nil {
			err = s.st.remove(bs, o.Key)
		}
		if err != nil {
			e := s3AsError(err, "InternalError", 500)
			out.Errors = append(out.Errors, failed{o.Key, e.Code, e.Message})
			continue
		}
		if !in.Quiet {
			out.Deleted = append(out.Deleted, deleted{o.Key})
		}
	}
	s3WriteXML(req.w, http.StatusOK, out)
	return nil
}

// s3ParseCopySource splits x-amz-copy-source ("[/]bucket/key[?versionId=...]", URL-encoded).
func s3ParseCopySource(v string) (bucket, key string, err error) {
	path, query, _ := strings.Cut(v, "?")
	path, uerr := url.PathUnescape(strings.TrimPrefix(path, "/"))
	if uerr != nil {
		return "", "", s3ErrInvalidArgument("x-amz-copy-source is not correctly URL-encoded")
	}
	bucket, key, _ = strings.Cut(path, "/")
	if bucket == "" || key == "" {
		return "", "", s3ErrInvalidArgument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
	}
	if query != "" {
		qv, _ := url.ParseQuery(query)
		if vid := qv.Get("versionId"); vid != "" && vid != "null" {
			return "", "", &Error{Code: "NoSuchVersion", Status: 404, Message: "The specified version does not exist (this server keeps no versions)."}
		}
	}
	return bucket, key, nil
}

func (s *S3Server) copyObject(req *s3Req) error {
	h := req.r.Header
	srcBucket, srcKey, err := s3ParseCopySource(h.Get("X-Amz-Copy-Source"))
	if err != nil {
		return err
	}
	_, dst, err := s.writeAccess(req)
	if err != nil {
		return err
	}
	sb, sbs, err := s.bucketFor(req, srcBucket, true)
	if err != nil {
		return err
	}
	if err := s.authorize(req, &sb, "s3:GetObject", s3ObjectARN(srcBucket, srcKey)); err != nil {
		return err
	}
	cond, err := s3WriteCondFrom(h)
	if err != nil {
		return err
	}
	directive := strings.ToUpper(h.Get("X-Amz-Metadata-Directive"))
	if directive != "" && directive != "COPY" && directive != "REPLACE" {
		return s3ErrInvalidArgument("Unknown metadata directive " + directive)
	}
	som, in, err := s.st.open(sbs, srcKey)
	if err != nil {
		return err
	}
	if som == nil {
		return s3ErrNoSuchKey(srcKey)
	}
	defer in.Close()
	if s3ReadConditions(h, "X-Amz-Copy-Source-", som) != 0 {
		return s3ErrPrecondition("x-amz-copy-source-if-*")
	}
	if srcBucket == req.bucket && srcKey == req.key && directive != "REPLACE" &&
		h.Get("X-Amz-Storage-Class") == "" && h.Get("X-Amz-Server-Side-Encryption") == "" {
		return &Error{Code: "InvalidRequest", Status: 400, Message: "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."}
	}

	var om *s3ObjectMeta
	if directive == "REPLACE" {
		if om, err = s.objectMetaFromHeaders(req); err != nil {
			return err
		}
	} else {
		c := *som
		om = &c
		om.Key, om.Owner, om.StorageClass = req.key, req.callerAccount(), ""
		if err := s3ApplyStorageAndSSE(h, om); err != nil {
			return err
		}
		if om.ACL, om.Grants, err = s3ACLFromHeaders(h); err != nil {
			return err
		}
	}
	alg := strings.ToLower(h.Get("X-Amz-Checksum-Algorithm"))
	if alg == "" && som.ChecksumType == "FULL_OBJECT" {
		alg = som.ChecksumAlgorithm
	}
	if alg == "" {
		alg = s3DefaultChecksum
	}
	sumAlg, ok := s3ChecksumAlgByName(alg)
	if !ok {
		return &Error{Code: "InvalidRequest", Status: 400, Message: fmt.Sprintf("Checksum algorithm %q is not supported by this server.", alg)}
	}

	f, err := s.st.tempFile("copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	m, sum := md5.New(), sumAlg.newHash()
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(io.MultiWriter(f, m, sum), in, buf)
	if err == nil && n != som.Size {
		err = fmt.Errorf("copy %s/%s: read %d of %d bytes", srcBucket, srcKey, n, som.Size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	om.Size, om.PartSizes = n, nil
	om.ETag = `"` + fmt.Sprintf("%x", m.Sum(nil)) + `"`
	om.ChecksumAlgorithm, om.Checksum, om.ChecksumType = sumAlg.name, base64.StdEncoding.EncodeToString(sum.Sum(nil)), "FULL_OBJECT"
	om.LastModified = s.cfg.Now().UTC()
	if err := s.st.commit(dst, f.Name(), om, cond); err != nil {
		return err
	}
	s3SetSSEHeaders(req.w.Header(), om)
	s3WriteXML(req.w, http.StatusOK, s3CopyResultXML(om))
	return nil
}

// s3ChecksumFields holds one checksum in the element named after its algorithm, as S3's XML does.
type s3ChecksumFields struct {
	ChecksumCRC32     string `xml:"ChecksumCRC32,omitempty"`
	ChecksumCRC32C    string `xml:"ChecksumCRC32C,omitempty"`
	ChecksumCRC64NVME string `xml:"ChecksumCRC64NVME,omitempty"`
	ChecksumSHA1      string `xml:"ChecksumSHA1,omitempty"`
	ChecksumSHA256    string `xml:"ChecksumSHA256,omitempty"`
	ChecksumSHA512    string `xml:"ChecksumSHA512,omitempty"`
	ChecksumMD5       string `xml:"ChecksumMD5,omitempty"`
}

func s3ChecksumXML(alg, value string) s3ChecksumFields {
	var c s3ChecksumFields
	switch alg {
	case "crc32":
		c.ChecksumCRC32 = value
	case "crc32c":
		c.ChecksumCRC32C = value
	case "crc64nvme":
		c.ChecksumCRC64NVME = value
	case "sha1":
		c.ChecksumSHA1 = value
	case "sha256":
		c.ChecksumSHA256 = value
	case "sha512":
		c.ChecksumSHA512 = value
	case "md5":
		c.ChecksumMD5 = value
	}
	return c
}

// get returns the (single) checksum an XML element carried, by algorithm.
func (c s3ChecksumFields) get() (alg, value string) {
	for _, p := range []struct{ a, v string }{
		{"crc32", c.ChecksumCRC32}, {"crc32c", c.ChecksumCRC32C}, {"crc64nvme", c.ChecksumCRC64NVME},
		{"sha1", c.ChecksumSHA1}, {"sha256", c.ChecksumSHA256}, {"sha512", c.ChecksumSHA512}, {"md5", c.ChecksumMD5},
	} {
		if p.v != "" {
			return p.a, p.v
		}
	}
	return "", ""
}

func s3CopyResultXML(om *s3ObjectMeta) any {
	return struct {
		XMLName      xml.Name `xml:"CopyObjectResult"`
		Xmlns        string   `xml:"xmlns,attr"`
		ETag         string   `xml:"ETag"`
		LastModified string   `xml:"LastModified"`
		ChecksumType string   `xml:"ChecksumType,omitempty"`
		s3ChecksumFields
	}{Xmlns: s3XMLNS, ETag: om.ETag, LastModified: om.LastModified.Format(s3ISOTime), ChecksumType: om.ChecksumType,
		s3ChecksumFields: s3ChecksumXML(om.ChecksumAlgorithm, om.Checksum)}
}
