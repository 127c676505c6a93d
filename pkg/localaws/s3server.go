package localaws

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// S3Config configures the S3 server.
type S3Config struct {
	// DataDir holds buckets and objects; a restart with the same dir keeps them.
	DataDir string
	// Region is where buckets are unless they say otherwise.
	Region string
	Now    func() time.Time
	Logger *slog.Logger
}

// S3Server is an S3-compatible server (path-style) that stores objects on disk and authorizes every
// request like AWS: SigV4 against the Directory, then the identity's policies (a role session's are
// its role's) and the bucket policy. It is what `s3dest dev` uses as staging and customer buckets.
type S3Server struct {
	dir *Directory
	cfg S3Config
	st  *store
}

const s3NS = "http://s3.amazonaws.com/doc/2006-03-01/"

// NewS3Server opens (or creates) the store under cfg.DataDir and registers its buckets in dir.
func NewS3Server(dir *Directory, cfg S3Config) (*S3Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("s3: DataDir is required")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := openStore(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("s3: open store: %w", err)
	}
	for _, bm := range st.buckets() {
		dir.PutBucket(Bucket{Name: bm.Name, Region: bm.Region, Account: bm.Account, Policy: bm.Policy})
	}
	return &S3Server{dir: dir, cfg: cfg, st: st}, nil
}

// EnsureBucket creates b if it does not exist and registers it; an existing bucket keeps its objects
// but takes b's policy.
func (s *S3Server) EnsureBucket(b Bucket) error {
	if b.Region == "" {
		b.Region = s.cfg.Region
	}
	if b.Account == "" {
		b.Account = DefaultAccountID
	}
	if _, err := s.st.createBucket(bucketMeta{Name: b.Name, Region: b.Region, Account: b.Account, Created: s.cfg.Now().UTC(), Policy: b.Policy}); err != nil {
		return err
	}
	if bm, ok := s.st.bucket(b.Name); ok {
		b.Region, b.Account = bm.Region, bm.Account
	}
	s.dir.PutBucket(b)
	return nil
}

// request is one S3 call being served.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	id     Identity
	sr     SignedRequest
	bucket string
	key    string
	q      url.Values
}

// ServeHTTP implements the S3 REST API, path-style.
func (s *S3Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	id, sr, err := VerifyRequest(r, s.dir, s.cfg.Now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req := &request{w: w, r: r, id: id, sr: sr, bucket: bucket, key: key, q: q}
	if err := s.route(req); err != nil {
		s.fail(w, r, err)
	}
}

func (s *S3Server) route(req *request) error {
	r, q := req.r, req.q
	if req.bucket == "" {
		if r.Method == http.MethodGet {
			return s.listBuckets(req)
		}
		return notImplemented()
	}
	if req.key == "" {
		switch {
		case r.Method == http.MethodPut && len(q) == 0:
			return s.createBucket(req)
		case r.Method == http.MethodHead:
			return s.headBucket(req)
		case r.Method == http.MethodDelete && len(q) == 0:
			return s.deleteBucket(req)
		case r.Method == http.MethodGet && q.Has("location"):
			return s.bucketLocation(req)
		case r.Method == http.MethodGet && q.Get("list-type") == "2":
			return s.listObjects(req, true)
		case r.Method == http.MethodGet && len(q) <= 5 && !q.Has("uploads") && !q.Has("policy") && !q.Has("acl") && !q.Has("versioning"):
			return s.listObjects(req, false)
		case r.Method == http.MethodPost && q.Has("delete"):
			return s.deleteObjects(req)
		}
		return notImplemented()
	}
	switch r.Method {
	case http.MethodPut:
		switch {
		case q.Has("partNumber") && q.Has("uploadId"):
			return s.uploadPart(req)
		case q.Has("acl"):
			return s.putObjectACL(req)
		case r.Header.Get("X-Amz-Copy-Source") != "":
			return s.copyObject(req)
		case len(q) == 0 || q.Has("x-id"):
			return s.putObject(req)
		}
	case http.MethodGet, http.MethodHead:
		switch {
		case q.Has("acl"):
			return s.getObjectACL(req)
		case q.Has("uploadId"):
			return notImplemented()
		default:
			return s.getObject(req)
		}
	case http.MethodDelete:
		if q.Has("uploadId") {
			return s.abortUpload(req)
		}
		return s.deleteObject(req)
	case http.MethodPost:
		switch {
		case q.Has("uploads"):
			return s.createUpload(req)
		case q.Has("uploadId"):
			return s.completeUpload(req)
		}
	}
	return notImplemented()
}

func notImplemented() error {
	return &Error{Code: "NotImplemented", Status: 501, Message: "A header or query you provided implies functionality that is not implemented"}
}

// authorize checks the bucket exists and is addressed in its region, then the identity's permission.
func (s *S3Server) authorize(req *request, action string, needObjectACL bool) (Bucket, error) {
	b, ok := s.dir.Bucket(req.bucket)
	if _, exists := s.st.bucket(req.bucket); !ok || !exists {
		return Bucket{}, &Error{Code: "NoSuchBucket", Status: 404, Message: "The specified bucket does not exist"}
	}
	region := b.Region
	if region == "" {
		region = s.cfg.Region
	}
	if req.sr.Region != region {
		return b, &Error{Code: "AuthorizationHeaderMalformed", Status: 400, Region: region,
			Message: fmt.Sprintf("The authorization header is malformed; the region '%s' is wrong; expecting '%s'", req.sr.Region, region)}
	}
	resource := "arn:aws:s3:::" + req.bucket
	if req.key != "" && action != "s3:ListBucket" {
		resource += "/" + req.key
	}
	if err := s.dir.Authorize(req.id, action, resource, &b); err != nil {
		return b, err
	}
	if needObjectACL {
		if err := s.dir.Authorize(req.id, "s3:PutObjectAcl", resource, &b); err != nil {
			return b, err
		}
	}
	return b, nil
}

// setsACL reports whether a write carries an ACL, which AWS authorizes as s3:PutObjectAcl too.
func setsACL(h http.Header) bool {
	if h.Get("X-Amz-Acl") != "" {
		return true
	}
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-grant-") {
			return true
		}
	}
	return false
}

func (s *S3Server) listBuckets(req *request) error {
	if err := s.dir.Authorize(req.id, "s3:ListAllMyBuckets", "*", nil); err != nil {
		return err
	}
	type bucketXML struct {
		Name         string `xml:"Name"`
		CreationDate string `xml:"CreationDate"`
	}
	var out struct {
		XMLName xml.Name    `xml:"ListAllMyBucketsResult"`
		Xmlns   string      `xml:"xmlns,attr"`
		Owner   ownerXML    `xml:"Owner"`
		Buckets []bucketXML `xml:"Buckets>Bucket"`
	}
	out.Xmlns = s3NS
	out.Owner = ownerXML{ID: AccountOf(req.id.PrincipalARN)}
	for _, bm := range s.st.buckets() {
		if req.id.Admin || bm.Account == AccountOf(req.id.PrincipalARN) {
			out.Buckets = append(out.Buckets, bucketXML{bm.Name, bm.Created.Format(time.RFC3339)})
		}
	}
	return writeXML(req.w, 200, out)
}

func (s *S3Server) createBucket(req *request) error {
	if !bucketNameRE.MatchString(req.bucket) {
		return &Error{Code: "InvalidBucketName", Status: 400, Message: "The specified bucket is not valid."}
	}
	if err := s.dir.Authorize(req.id, "s3:CreateBucket", "arn:aws:s3:::"+req.bucket, nil); err != nil {
		return err
	}
	region := s.cfg.Region
	var cfg struct {
		LocationConstraint string `xml:"LocationConstraint"`
	}
	if body, _ := io.ReadAll(io.LimitReader(req.r.Body, 64<<10)); len(body) > 0 {
		if err := xml.Unmarshal(body, &cfg); err != nil {
			return &Error{Code: "MalformedXML", Status: 400, Message: "The XML you provided was not well-formed"}
		}
		if cfg.LocationConstraint != "" {
			region = cfg.LocationConstraint
		}
	}
	if bm, ok := s.st.bucket(req.bucket); ok {
		if bm.Account == AccountOf(req.id.PrincipalARN) || req.id.Admin {
			return &Error{Code: "BucketAlreadyOwnedByYou", Status: 409, Message: "Your previous request to create the named bucket succeeded and you already own it."}
		}
		return &Error{Code: "BucketAlreadyExists", Status: 409, Message: "The requested bucket name is not available."}
	}
	account := AccountOf(req.id.PrincipalARN)
	if account == "" {
		account = DefaultAccountID
	}
	if err := s.EnsureBucket(Bucket{Name: req.bucket, Region: region, Account: account}); err != nil {
		return err
	}
	req.w.Header().Set("Location", "/"+req.bucket)
	req.w.WriteHeader(200)
	return nil
}

func (s *S3Server) headBucket(req *request) error {
	b, err := s.authorize(req, "s3:ListBucket", false)
	var e *Error
	if errors.As(err, &e) && e.Region != "" {
		req.w.Header().Set("X-Amz-Bucket-Region", e.Region)
		req.w.WriteHeader(http.StatusMovedPermanently)
		return nil
	}
	if err != nil {
		return err
	}
	req.w.Header().Set("X-Amz-Bucket-Region", b.Region)
	req.w.WriteHeader(200)
	return nil
}

func (s *S3Server) deleteBucket(req *request) error {
	if _, err := s.authorize(req, "s3:DeleteBucket", false); err != nil {
		return err
	}
	if err := s.st.deleteBucket(req.bucket); err != nil {
		return err
	}
	s.dir.DeleteBucket(req.bucket)
	req.w.WriteHeader(204)
	return nil
}

func (s *S3Server) bucketLocation(req *request) error {
	b, ok := s.dir.Bucket(req.bucket)
	if !ok {
		return &Error{Code: "NoSuchBucket", Status: 404, Message: "The specified bucket does not exist"}
	}
	if err := s.dir.Authorize(req.id, "s3:GetBucketLocation", "arn:aws:s3:::"+req.bucket, &b); err != nil {
		return err
	}
	loc := b.Region
	if loc == "us-east-1" {
		loc = ""
	}
	return writeXML(req.w, 200, struct {
		XMLName xml.Name `xml:"LocationConstraint"`
		Xmlns   string   `xml:"xmlns,attr"`
		Value   string   `xml:",chardata"`
	}{Xmlns: s3NS, Value: loc})
}

type ownerXML struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName,omitempty"`
}

type objectXML struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
	StorageClass string `xml:"StorageClass"`
}

type prefixXML struct {
	Prefix string `xml:"Prefix"`
}

func (s *S3Server) listObjects(req *request, v2 bool) error {
	if _, err := s.authorize(req, "s3:ListBucket", false); err != nil {
		return err
	}
	q := req.q
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	maxKeys := 1000
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return &Error{Code: "InvalidArgument", Status: 400, Message: "max-keys must be a non-negative integer"}
		}
		maxKeys = min(n, 1000)
	}
	after := q.Get("start-after")
	if !v2 {
		after = q.Get("marker")
	}
	token := q.Get("continuation-token")
	if token != "" {
		k, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			return &Error{Code: "InvalidArgument", Status: 400, Message: "The continuation token provided is incorrect"}
		}
		after = string(k)
	}
	enc := func(s string) string { return s }
	if q.Get("encoding-type") == "url" {
		enc = func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	}

	var contents []objectXML
	var prefixes []prefixXML
	seen := map[string]bool{}
	last, truncated := "", false
	for _, om := range s.st.list(req.bucket, prefix, after) {
		if len(contents)+len(prefixes) >= maxKeys {
			truncated = true
			break
		}
		if delim != "" {
			if i := strings.Index(om.Key[len(prefix):], delim); i >= 0 {
				cp := om.Key[:len(prefix)+i+len(delim)]
				if !seen[cp] {
					seen[cp] = true
					prefixes = append(prefixes, prefixXML{enc(cp)})
				}
				last = om.Key
				continue
			}
		}
		contents = append(contents, objectXML{enc(om.Key), om.LastModified.UTC().Format("2006-01-02T15:04:05.000Z"), om.ETag, om.Size, "STANDARD"})
		last = om.Key
	}
	type result struct {
		XMLName               xml.Name    `xml:"ListBucketResult"`
		Xmlns                 string      `xml:"xmlns,attr"`
		Name                  string      `xml:"Name"`
		Prefix                string      `xml:"Prefix"`
		Delimiter             string      `xml:"Delimiter,omitempty"`
		MaxKeys               int         `xml:"MaxKeys"`
		EncodingType          string      `xml:"EncodingType,omitempty"`
		IsTruncated           bool        `xml:"IsTruncated"`
		KeyCount              int         `xml:"KeyCount,omitempty"`
		ContinuationToken     string      `xml:"ContinuationToken,omitempty"`
		NextContinuationToken string      `xml:"NextContinuationToken,omitempty"`
		StartAfter            string      `xml:"StartAfter,omitempty"`
		Marker                string      `xml:"Marker,omitempty"`
		NextMarker            string      `xml:"NextMarker,omitempty"`
		Contents              []objectXML `xml:"Contents"`
		CommonPrefixes        []prefixXML `xml:"CommonPrefixes"`
	}
	out := result{Xmlns: s3NS, Name: req.bucket, Prefix: enc(prefix), Delimiter: delim, MaxKeys: maxKeys,
		EncodingType: q.Get("encoding-type"), IsTruncated: truncated, Contents: contents, CommonPrefixes: prefixes}
	if v2 {
		out.KeyCount = len(contents) + len(prefixes)
		out.ContinuationToken = token
		out.StartAfter = q.Get("start-after")
		if truncated {
			out.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(last))
		}
	} else {
		out.Marker = q.Get("marker")
		if truncated {
			out.NextMarker = enc(last)
		}
	}
	return writeXML(req.w, 200, out)
}

// checksumAlgorithms are the S3 checksums the server verifies and returns.
var checksumAlgorithms = map[string]func() hash.Hash{
	"crc32":  func() hash.Hash { return crc32.NewIEEE() },
	"crc32c": func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) },
	"sha1":   sha1.New,
	"sha256": sha256.New,
}

// receive streams a request body into a temp file, verifying every integrity check the client sent:
// x-amz-content-sha256, Content-MD5, x-amz-checksum-* (header or aws-chunked trailer).
func (s *S3Server) receive(req *request) (tmp string, size int64, md5hex string, checksums map[string]string, err error) {
	h := req.r.Header
	body := io.Reader(req.r.Body)
	var trailers func() map[string]string
	switch {
	case req.sr.Streaming():
		body, trailers = NewChunkedReader(body, req.sr)
	case req.sr.PayloadHash != unsignedPayload && req.sr.PayloadHash != "":
		body = NewHashCheckingReader(body, req.sr.PayloadHash)
	}
	algo := strings.ToLower(h.Get("X-Amz-Sdk-Checksum-Algorithm"))
	for a := range checksumAlgorithms {
		if h.Get("X-Amz-Checksum-"+a) != "" {
			algo = a
		}
	}
	if t := strings.ToLower(h.Get("X-Amz-Trailer")); strings.HasPrefix(t, "x-amz-checksum-") {
		algo = strings.TrimPrefix(t, "x-amz-checksum-")
	}
	m := md5.New()
	writers := []io.Writer{m}
	var sum hash.Hash
	if newHash, ok := checksumAlgorithms[algo]; ok {
		sum = newHash()
		writers = append(writers, sum)
	}
	f, err := s.st.tempFile()
	if err != nil {
		return "", 0, "", nil, err
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	writers = append(writers, f)
	size, err = io.Copy(io.MultiWriter(writers...), body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return "", 0, "", nil, e
		}
		return "", 0, "", nil, &Error{Code: "IncompleteBody", Status: 400, Message: "You did not provide the number of bytes specified by the Content-Length HTTP header"}
	}
	if want := h.Get("X-Amz-Decoded-Content-Length"); want != "" && want != strconv.FormatInt(size, 10) {
		return "", 0, "", nil, &Error{Code: "IncompleteBody", Status: 400, Message: "the decoded content length does not match the body"}
	}
	md5sum := m.Sum(nil)
	if want := h.Get("Content-Md5"); want != "" && want != base64.StdEncoding.EncodeToString(md5sum) {
		return "", 0, "", nil, &Error{Code: "BadDigest", Status: 400, Message: "The Content-MD5 you specified did not match what we received."}
	}
	checksums = map[string]string{}
	if sum != nil {
		got := base64.StdEncoding.EncodeToString(sum.Sum(nil))
		want := h.Get("X-Amz-Checksum-" + algo)
		if want == "" && trailers != nil {
			want = trailers()["x-amz-checksum-"+algo]
		}
		if want != "" && want != got {
			return "", 0, "", nil, &Error{Code: "BadDigest", Status: 400, Message: fmt.Sprintf("The %s you specified did not match the calculated checksum.", strings.ToUpper(algo))}
		}
		if want != "" {
			checksums[algo] = got
		}
	}
	return f.Name(), size, hex.EncodeToString(md5sum), checksums, nil
}

func objectHeaders(h http.Header, key, owner string) *objectMeta {
	om := &objectMeta{
		Key: key, ContentType: h.Get("Content-Type"), ContentEncoding: h.Get("Content-Encoding"),
		ContentDisposition: h.Get("Content-Disposition"), CacheControl: h.Get("Cache-Control"),
		ACL: h.Get("X-Amz-Acl"), SSE: h.Get("X-Amz-Server-Side-Encryption"), Owner: owner,
		UserMeta: map[string]string{},
	}
	if om.ContentType == "" {
		om.ContentType = "binary/octet-stream"
	}
	if om.ACL == "" {
		om.ACL = "private"
	}
	if om.SSE == "" {
		om.SSE = "AES256" // S3 encrypts every object with SSE-S3 by default since 2023
	}
	for k, v := range h {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-amz-meta-") && len(v) > 0 {
			om.UserMeta[strings.TrimPrefix(lk, "x-amz-meta-")] = v[0]
		}
	}
	return om
}

func (s *S3Server) putObject(req *request) error {
	if _, err := s.authorize(req, "s3:PutObject", setsACL(req.r.Header)); err != nil {
		return err
	}
	ifNoneMatch, err := ifNoneMatchStar(req.r.Header)
	if err != nil {
		return err
	}
	if ifNoneMatch {
		if _, exists := s.st.get(req.bucket, req.key); exists {
			return preconditionFailed()
		}
	}
	tmp, size, md5hex, checksums, err := s.receive(req)
	if err != nil {
		return err
	}
	om := objectHeaders(req.r.Header, req.key, AccountOf(req.id.PrincipalARN))
	om.Size, om.ETag, om.Checksums, om.LastModified = size, `"`+md5hex+`"`, checksums, s.cfg.Now().UTC()
	if err := s.st.commit(req.bucket, tmp, om, ifNoneMatch); err != nil {
		return err
	}
	s.writeObjectHeaders(req.w, om, false)
	req.w.WriteHeader(200)
	s.cfg.Logger.Debug("put object", "bucket", req.bucket, "key", req.key, "size", size, "by", req.id.PrincipalARN)
	return nil
}

func ifNoneMatchStar(h http.Header) (bool, error) {
	v := h.Get("If-None-Match")
	switch v {
	case "":
		return false, nil
	case "*":
		return true, nil
	}
	return false, &Error{Code: "NotImplemented", Status: 501, Message: "If-None-Match on writes supports only *"}
}

func preconditionFailed() error {
	return &Error{Code: "PreconditionFailed", Status: 412, Message: "At least one of the pre-conditions you specified did not hold"}
}

func (s *S3Server) writeObjectHeaders(w http.ResponseWriter, om *objectMeta, full bool) {
	h := w.Header()
	h.Set("ETag", om.ETag)
	if om.SSE != "" {
		h.Set("X-Amz-Server-Side-Encryption", om.SSE)
	}
	for a, v := range om.Checksums {
		h.Set("X-Amz-Checksum-"+a, v)
	}
	if !full {
		return
	}
	h.Set("Content-Type", om.ContentType)
	h.Set("Last-Modified", om.LastModified.UTC().Format(http.TimeFormat))
	for k, v := range map[string]string{"Content-Encoding": om.ContentEncoding, "Content-Disposition": om.ContentDisposition, "Cache-Control": om.CacheControl} {
		if v != "" {
			h.Set(k, v)
		}
	}
	for k, v := range om.UserMeta {
		h.Set("X-Amz-Meta-"+k, v)
	}
	h.Set("Accept-Ranges", "bytes")
}

func (s *S3Server) getObject(req *request) error {
	if _, err := s.authorize(req, "s3:GetObject", false); err != nil {
		return err
	}
	om, ok := s.st.get(req.bucket, req.key)
	if !ok {
		return &Error{Code: "NoSuchKey", Status: 404, Message: "The specified key does not exist."}
	}
	f, err := os.Open(s.st.dataPath(req.bucket, om))
	if err != nil {
		return &Error{Code: "NoSuchKey", Status: 404, Message: "The specified key does not exist."}
	}
	defer f.Close()
	s.writeObjectHeaders(req.w, om, true)
	http.ServeContent(req.w, req.r, "", om.LastModified, f)
	return nil
}

func (s *S3Server) deleteObject(req *request) error {
	if _, err := s.authorize(req, "s3:DeleteObject", false); err != nil {
		return err
	}
	s.st.remove(req.bucket, req.key)
	req.w.WriteHeader(204)
	return nil
}

func (s *S3Server) deleteObjects(req *request) error {
	var in struct {
		Objects []struct {
			Key string `xml:"Key"`
		} `xml:"Object"`
		Quiet bool `xml:"Quiet"`
	}
	body, _ := io.ReadAll(io.LimitReader(req.r.Body, 4<<20))
	if err := xml.Unmarshal(body, &in); err != nil {
		return &Error{Code: "MalformedXML", Status: 400, Message: "The XML you provided was not well-formed"}
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
	out.Xmlns = s3NS
	for _, o := range in.Objects {
		sub := *req
		sub.key = o.Key
		if _, err := s.authorize(&sub, "s3:DeleteObject", false); err != nil {
			e := err.(*Error)
			out.Errors = append(out.Errors, failed{o.Key, e.Code, e.Message})
			continue
		}
		s.st.remove(req.bucket, o.Key)
		if !in.Quiet {
			out.Deleted = append(out.Deleted, deleted{o.Key})
		}
	}
	return writeXML(req.w, 200, out)
}

func (s *S3Server) copyObject(req *request) error {
	src, err := url.PathUnescape(strings.TrimPrefix(req.r.Header.Get("X-Amz-Copy-Source"), "/"))
	if err != nil {
		return &Error{Code: "InvalidArgument", Status: 400, Message: "x-amz-copy-source is not URL-encoded"}
	}
	src, _, _ = strings.Cut(src, "?")
	srcBucket, srcKey, _ := strings.Cut(src, "/")
	srcReq := *req
	srcReq.bucket, srcReq.key = srcBucket, srcKey
	if _, err := s.authorize(&srcReq, "s3:GetObject", false); err != nil {
		return err
	}
	if _, err := s.authorize(req, "s3:PutObject", setsACL(req.r.Header)); err != nil {
		return err
	}
	som, ok := s.st.get(srcBucket, srcKey)
	if !ok {
		return &Error{Code: "NoSuchKey", Status: 404, Message: "The specified key does not exist."}
	}
	in, err := os.Open(s.st.dataPath(srcBucket, som))
	if err != nil {
		return err
	}
	defer in.Close()
	f, err := s.st.tempFile()
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, in); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	f.Close()
	om := *som
	if req.r.Header.Get("X-Amz-Metadata-Directive") == "REPLACE" {
		om = *objectHeaders(req.r.Header, req.key, AccountOf(req.id.PrincipalARN))
		om.Size, om.ETag, om.Checksums = som.Size, som.ETag, som.Checksums
	}
	om.Key, om.LastModified, om.Owner = req.key, s.cfg.Now().UTC(), AccountOf(req.id.PrincipalARN)
	if acl := req.r.Header.Get("X-Amz-Acl"); acl != "" {
		om.ACL = acl
	}
	if err := s.st.commit(req.bucket, f.Name(), &om, false); err != nil {
		return err
	}
	return writeXML(req.w, 200, struct {
		XMLName      xml.Name `xml:"CopyObjectResult"`
		Xmlns        string   `xml:"xmlns,attr"`
		ETag         string   `xml:"ETag"`
		LastModified string   `xml:"LastModified"`
	}{Xmlns: s3NS, ETag: om.ETag, LastModified: om.LastModified.Format(time.RFC3339)})
}

type grantXML struct {
	Grantee struct {
		XMLNS string `xml:"xmlns:xsi,attr"`
		Type  string `xml:"xsi:type,attr"`
		ID    string `xml:"ID,omitempty"`
		URI   string `xml:"URI,omitempty"`
	} `xml:"Grantee"`
	Permission string `xml:"Permission"`
}

func grant(id, uri, perm string) grantXML {
	var g grantXML
	g.Grantee.XMLNS = "http://www.w3.org/2001/XMLSchema-instance"
	if uri != "" {
		g.Grantee.Type, g.Grantee.URI = "Group", uri
	} else {
		g.Grantee.Type, g.Grantee.ID = "CanonicalUser", id
	}
	g.Permission = perm
	return g
}

// getObjectACL returns the grants of the canned ACL the object was written with; the canonical user IDs
// are account IDs. bucket-owner-full-control lists the bucket owner's grant even when it is the writer.
func (s *S3Server) getObjectACL(req *request) error {
	b, err := s.authorize(req, "s3:GetObjectAcl", false)
	if err != nil {
		return err
	}
	om, ok := s.st.get(req.bucket, req.key)
	if !ok {
		return &Error{Code: "NoSuchKey", Status: 404, Message: "The specified key does not exist."}
	}
	grants := []grantXML{grant(om.Owner, "", "FULL_CONTROL")}
	switch om.ACL {
	case "bucket-owner-full-control":
		grants = append(grants, grant(b.Account, "", "FULL_CONTROL"))
	case "bucket-owner-read":
		grants = append(grants, grant(b.Account, "", "READ"))
	case "public-read":
		grants = append(grants, grant("", "http://acs.amazonaws.com/groups/global/AllUsers", "READ"))
	case "authenticated-read":
		grants = append(grants, grant("", "http://acs.amazonaws.com/groups/global/AuthenticatedUsers", "READ"))
	}
	return writeXML(req.w, 200, struct {
		XMLName xml.Name   `xml:"AccessControlPolicy"`
		Xmlns   string     `xml:"xmlns,attr"`
		Owner   ownerXML   `xml:"Owner"`
		Grants  []grantXML `xml:"AccessControlList>Grant"`
	}{Xmlns: s3NS, Owner: ownerXML{ID: om.Owner}, Grants: grants})
}

func (s *S3Server) putObjectACL(req *request) error {
	if _, err := s.authorize(req, "s3:PutObjectAcl", false); err != nil {
		return err
	}
	om, ok := s.st.get(req.bucket, req.key)
	if !ok {
		return &Error{Code: "NoSuchKey", Status: 404, Message: "The specified key does not exist."}
	}
	acl := req.r.Header.Get("X-Amz-Acl")
	if acl == "" {
		return notImplemented()
	}
	upd := *om
	upd.ACL = acl
	// Rewrite the metadata through a commit of a copy of the bytes is wasteful; metadata alone suffices.
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if err := writeJSON(s.st.root+"/tmp", s.st.metaPath(req.bucket, req.key), &upd); err != nil {
		return err
	}
	s.st.index[req.bucket][req.key] = &upd
	req.w.WriteHeader(200)
	return nil
}

func writeXML(w http.ResponseWriter, status int, v any) error {
	body, err := xml.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
	return nil
}

func (s *S3Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		s.cfg.Logger.Error("s3 request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		e = &Error{Code: "InternalError", Status: 500, Message: "We encountered an internal error. Please try again."}
	}
	if e.Region != "" {
		w.Header().Set("X-Amz-Bucket-Region", e.Region)
	}
	w.Header().Set("X-Amz-Request-Id", requestID())
	if r.Method == http.MethodHead {
		w.WriteHeader(e.Status)
		return
	}
	_ = writeXML(w, e.Status, struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string   `xml:"Code"`
		Message   string   `xml:"Message"`
		Region    string   `xml:"Region,omitempty"`
		Resource  string   `xml:"Resource"`
		RequestID string   `xml:"RequestId"`
	}{Code: e.Code, Message: e.Message, Region: e.Region, Resource: r.URL.Path, RequestID: requestID()})
}
