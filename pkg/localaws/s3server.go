package localaws

import (
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// S3Config configures an S3Server.
type S3Config struct {
	// DataDir holds buckets, objects and multipart uploads; a restart with the same DataDir keeps them.
	DataDir string
	// Region is the region of buckets that do not name one (default us-east-1).
	Region string
	// Now is the clock (default time.Now); it dates objects and judges signature times.
	Now func() time.Time
	// Logger receives one line per request (Debug; denials at Info). It never sees secrets.
	Logger *slog.Logger
}

// S3Server is an in-process, S3-compatible server (path-style: /{bucket}/{key}) that keeps its data on
// disk and authorizes every request the way AWS does: the SigV4 signature identifies the Identity in
// the Directory, then dir.Authorize judges the operation's IAM action against the permission policies
// of the role behind the credentials (and the bucket policy). Requests signed for another region than
// the bucket's are refused with the bucket's region, as S3 does.
//
// It serves ListBuckets, Create/Head/Delete bucket, GetBucketLocation, Get/Put/Head/Delete/Copy
// object, DeleteObjects, ListObjects (v1 and v2), multipart uploads (create, upload part, complete,
// abort, list parts, list uploads) and object ACLs. Bodies are streamed to disk and verified against
// Content-MD5, x-amz-content-sha256, aws-chunked signatures and x-amz-checksum-* headers or trailers
// before anything is stored.
type S3Server struct {
	dir *Directory
	cfg S3Config
	st  *s3Store
	log *slog.Logger

	mu sync.Mutex
	// deleted names the buckets deleted through this server, so a bucket the Directory still lists is
	// not created again behind the user's back.
	deleted map[string]bool
	// uploadLocks serializes the part commits, completion and abortion of each multipart upload.
	uploadLocks sync.Map // upload ID → *sync.Mutex
}

const s3XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"

// NewS3Server opens (or creates) the store under cfg.DataDir and registers its buckets in dir. Buckets
// that dir already knows but the store does not are created, so a Directory filled from a dev config
// before the server starts is served as is. It does not listen; serve it with an http.Server.
func NewS3Server(dir *Directory, cfg S3Config) (*S3Server, error) {
	if dir == nil {
		return nil, errors.New("s3: a Directory is required")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("s3: DataDir is required")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := s3OpenStore(cfg.DataDir, log)
	if err != nil {
		return nil, fmt.Errorf("s3: open data dir %s: %w", cfg.DataDir, err)
	}
	s := &S3Server{dir: dir, cfg: cfg, st: st, log: log, deleted: map[string]bool{}}
	for _, bm := range st.bucketMetas() {
		if b, ok := dir.Bucket(bm.Name); ok {
			if err := s.EnsureBucket(b); err != nil {
				return nil, fmt.Errorf("s3: %w", err)
			}
			continue
		}
		dir.PutBucket(Bucket{Name: bm.Name, Region: bm.Region, Account: bm.Account})
	}
	for _, b := range dir.Buckets() {
		if _, ok := st.bucket(b.Name); !ok {
			if err := s.EnsureBucket(b); err != nil {
				return nil, fmt.Errorf("s3: %w", err)
			}
		}
	}
	return s, nil
}

// EnsureBucket creates b on disk if it does not exist and registers it in the Directory. It is
// idempotent: an existing bucket keeps its objects, takes b's Region and Account when they are set
// (else keeps its own), and is registered with b's other fields (e.g. its Policy).
func (s *S3Server) EnsureBucket(b Bucket) error {
	bm := s3BucketMeta{Name: b.Name, Region: b.Region, Account: b.Account, Created: s.cfg.Now().UTC()}
	if _, exists := s.st.bucket(b.Name); !exists {
		if bm.Region == "" {
			bm.Region = s.cfg.Region
		}
		if bm.Account == "" {
			bm.Account = DefaultAccountID
		}
	}
	got, created, err := s.st.ensureBucket(bm)
	if err != nil {
		return fmt.Errorf("ensure bucket %q: %w", b.Name, err)
	}
	b.Region, b.Account = got.Region, got.Account
	s.dir.PutBucket(b)
	s.mu.Lock()
	delete(s.deleted, b.Name)
	s.mu.Unlock()
	if created {
		s.log.Info("s3: bucket created", "bucket", b.Name, "region", got.Region, "account", got.Account)
	}
	return nil
}

// s3Req is one request being served.
type s3Req struct {
	w      *s3ResponseWriter
	r      *http.Request
	id     Identity
	sr     SignedRequest
	bucket string
	key    string
	q      url.Values
	op     string // the S3 operation, for logs
	action string // the last IAM action judged, for logs
	errMsg string // the error answered, for logs
}

// s3ResponseWriter remembers the status and size of the response.
type s3ResponseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *s3ResponseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *s3ResponseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *s3ResponseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP serves the S3 REST API, path-style.
func (s *S3Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &s3ResponseWriter{ResponseWriter: rw}
	rid := s3NewRequestID()
	w.Header().Set("X-Amz-Request-Id", rid)
	w.Header().Set("X-Amz-Id-2", rid)
	w.Header().Set("Server", "s3dest-localaws")
	req := &s3Req{w: w, r: r, op: "Unknown"}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("s3: panic while serving a request", "op", req.op, "method", r.Method, "bucket", req.bucket, "key", req.key, "panic", fmt.Sprint(p))
			if w.status == 0 {
				s.fail(req, rid, errors.New("panic"))
			}
		}
		s.logRequest(req, start)
	}()

	q, qerr := url.ParseQuery(r.URL.RawQuery)
	req.q = q
	path := r.URL.Path
	if qerr != nil || !strings.HasPrefix(path, "/") {
		s.fail(req, rid, &Error{Code: "InvalidURI", Status: 400, Message: "Couldn't parse the specified URI."})
		return
	}
	req.bucket, req.key, _ = strings.Cut(path[1:], "/")
	if !utf8.ValidString(req.key) {
		s.fail(req, rid, &Error{Code: "InvalidURI", Status: 400, Message: "Object keys must be valid UTF-8."})
		return
	}
	id, sr, err := VerifyRequest(r, s.dir, s.cfg.Now())
	if err != nil {
		s.fail(req, rid, s3AsError(err, "AccessDenied", http.StatusForbidden))
		return
	}
	if sr.Service != "s3" {
		s.fail(req, rid, &Error{Code: "AuthorizationHeaderMalformed", Status: 400,
			Message: fmt.Sprintf("The authorization header is malformed; incorrect service %q. This endpoint belongs to \"s3\".", sr.Service)})
		return
	}
	req.id, req.sr = id, sr
	if err := s.route(req); err != nil {
		if w.status != 0 {
			// The response is under way: all we can do is cut it short (net/http closes the connection
			// when fewer bytes than Content-Length were written) and say why in the log.
			s.log.Debug("s3: response cut short (client gone?)", "op", req.op, "bucket", req.bucket, "key", req.key, "error", err)
			return
		}
		s.fail(req, rid, err)
	}
}

func (s *S3Server) logRequest(req *s3Req, start time.Time) {
	status := req.w.status
	attrs := []any{"op", req.op, "method", req.r.Method, "bucket", req.bucket, "key", req.key, "status", status,
		"principal", req.id.PrincipalARN, "bytes", req.w.bytes, "duration", time.Since(start).Round(time.Microsecond)}
	switch {
	case status >= 500:
		s.log.Error("s3 request", attrs...)
	case status == http.StatusForbidden:
		// Users rehearse their IAM setup with this: say which action on what was refused, and why.
		s.log.Info("s3 request denied", append(attrs, "action", req.action, "error", req.errMsg)...)
	case status >= 400:
		s.log.Debug("s3 request", append(attrs, "error", req.errMsg)...)
	default:
		s.log.Debug("s3 request", attrs...)
	}
}

// s3ListParams are the query parameters of a bucket listing; any other parameter names a subresource.
var s3ListParams = map[string]bool{
	"prefix": true, "delimiter": true, "max-keys": true, "marker": true, "continuation-token": true,
	"start-after": true, "fetch-owner": true, "encoding-type": true, "list-type": true,
	"allow-unordered": true, "optional-object-attributes": true,
}

// s3ObjectParams are the query parameters that do not change which object operation a request is.
var s3ObjectParams = map[string]bool{
	"partNumber": true, "versionId": true, "response-content-type": true, "response-content-language": true,
	"response-expires": true, "response-cache-control": true, "response-content-disposition": true,
	"response-content-encoding": true,
}

// subresource returns the request's query parameter that is not an ordinary parameter of the
// operation (nor x-id, nor a presigned URL's X-Amz-* parameter): "" if none, "uploadId" for
// ?uploadId&partNumber, and a list of them if there are several.
func (req *s3Req) subresource(ordinary map[string]bool) string {
	var subs []string
	for k := range req.q {
		if ordinary[k] || k == "x-id" || strings.HasPrefix(strings.ToLower(k), "x-amz-") {
			continue
		}
		subs = append(subs, k)
	}
	sort.Strings(subs)
	return strings.Join(subs, "&")
}

func (s *S3Server) route(req *s3Req) error {
	r, q := req.r, req.q
	if req.bucket == "" {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			req.op = "ListBuckets"
			return s.listBuckets(req)
		}
		return s3ErrMethodNotAllowed(r.Method, "the service")
	}
	if req.key == "" {
		sub := req.subresource(s3ListParams)
		switch r.Method {
		case http.MethodPut:
			if sub == "" {
				req.op = "CreateBucket"
				return s.createBucket(req)
			}
		case http.MethodHead:
			req.op = "HeadBucket"
			return s.headBucket(req)
		case http.MethodDelete:
			if sub == "" {
				req.op = "DeleteBucket"
				return s.deleteBucket(req)
			}
		case http.MethodGet:
			switch {
			case q.Has("location"):
				req.op = "GetBucketLocation"
				return s.bucketLocation(req)
			case q.Has("versioning"):
				req.op = "GetBucketVersioning"
				return s.bucketVersioning(req)
			case q.Has("encryption"):
				req.op = "GetBucketEncryption"
				return s.bucketEncryption(req)
			case q.Has("uploads"):
				req.op = "ListMultipartUploads"
				return s.listUploads(req)
			case sub == "" && q.Get("list-type") == "2":
				req.op = "ListObjectsV2"
				return s.listObjects(req, true)
			case sub == "":
				req.op = "ListObjects"
				return s.listObjects(req, false)
			}
		case http.MethodPost:
			if q.Has("delete") {
				req.op = "DeleteObjects"
				return s.deleteObjects(req)
			}
		default:
			return s3ErrMethodNotAllowed(r.Method, "a bucket")
		}
		return s3ErrNotImplemented(sub)
	}

	sub := req.subresource(s3ObjectParams)
	copySource := r.Header.Get("X-Amz-Copy-Source") != ""
	switch r.Method {
	case http.MethodPut:
		switch {
		case q.Has("uploadId") && q.Has("partNumber") && sub == "uploadId":
			if copySource {
				req.op = "UploadPartCopy"
				return s3ErrNotImplemented("x-amz-copy-source on UploadPart")
			}
			req.op = "UploadPart"
			return s.uploadPart(req)
		case sub == "acl":
			req.op = "PutObjectAcl"
			return s.putObjectACL(req)
		case sub == "" && copySource:
			req.op = "CopyObject"
			return s.copyObject(req)
		case sub == "" && !q.Has("partNumber"):
			req.op = "PutObject"
			return s.putObject(req)
		}
	case http.MethodGet, http.MethodHead:
		switch {
		case sub == "acl" && r.Method == http.MethodGet:
			req.op = "GetObjectAcl"
			return s.getObjectACL(req)
		case sub == "uploadId" && r.Method == http.MethodGet:
			req.op = "ListParts"
			return s.listParts(req)
		case sub == "":
			req.op = "GetObject"
			if r.Method == http.MethodHead {
				req.op = "HeadObject"
			}
			return s.getObject(req)
		}
	case http.MethodDelete:
		switch sub {
		case "uploadId":
			req.op = "AbortMultipartUpload"
			return s.abortUpload(req)
		case "":
			req.op = "DeleteObject"
			return s.deleteObject(req)
		}
	case http.MethodPost:
		switch sub {
		case "uploads":
			req.op = "CreateMultipartUpload"
			return s.createUpload(req)
		case "uploadId":
			req.op = "CompleteMultipartUpload"
			return s.completeUpload(req)
		}
	default:
		return s3ErrMethodNotAllowed(r.Method, "an object")
	}
	if sub == "" {
		sub = r.Method + " with these parameters"
	}
	return s3ErrNotImplemented(sub)
}

// lookupBucket returns the bucket as the Directory knows it (its policy) with the store's region and
// owner. A bucket the Directory declares but the store lacks is created, unless it was deleted here.
func (s *S3Server) lookupBucket(name string) (Bucket, *s3BucketState, error) {
	bs, ok := s.st.bucket(name)
	db, inDir := s.dir.Bucket(name)
	if !ok && inDir && s3ValidBucketName(name) {
		s.mu.Lock()
		deleted := s.deleted[name]
		s.mu.Unlock()
		if !deleted {
			if err := s.EnsureBucket(db); err != nil {
				return Bucket{}, nil, err
			}
			bs, ok = s.st.bucket(name)
		}
	}
	if !ok {
		return Bucket{}, nil, s3ErrNoSuchBucket(name)
	}
	b := db
	if !inDir {
		b = Bucket{Name: name}
	}
	b.Region, b.Account = bs.meta.Region, bs.meta.Account
	return b, bs, nil
}

// bucketFor looks up the request's bucket and checks what every bucket request must satisfy: signed
// for the bucket's region (unless anyRegion) and, when the client names one, the expected owner.
func (s *S3Server) bucketFor(req *s3Req, name string, anyRegion bool) (Bucket, *s3BucketState, error) {
	b, bs, err := s.lookupBucket(name)
	if err != nil {
		return b, nil, err
	}
	if !anyRegion && req.sr.Region != b.Region {
		return b, nil, s3ErrWrongRegion(req.sr.Region, b.Region)
	}
	if want := req.r.Header.Get("X-Amz-Expected-Bucket-Owner"); want != "" && want != b.Account {
		return b, nil, &Error{Code: "AccessDenied", Status: http.StatusForbidden, Message: "Access Denied: the bucket is not owned by the expected account"}
	}
	return b, bs, nil
}

// authorize asks the Directory whether the request's identity may perform action on resource.
func (s *S3Server) authorize(req *s3Req, b *Bucket, action, resource string) error {
	req.action = action
	if err := s.dir.Authorize(req.id, action, resource, b); err != nil {
		return s3AsError(err, "AccessDenied", http.StatusForbidden)
	}
	return nil
}

func s3BucketARN(bucket string) string      { return "arn:aws:s3:::" + bucket }
func s3ObjectARN(bucket, key string) string { return "arn:aws:s3:::" + bucket + "/" + key }

// s3SetsACL reports whether a write carries an ACL (x-amz-acl or x-amz-grant-*), which AWS authorizes
// as s3:PutObjectAcl as well.
func s3SetsACL(h http.Header) bool {
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

// s3AccountOf returns the account ID of an IAM or STS ARN ("" if it has none).
func s3AccountOf(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 || parts[0] != "arn" {
		return ""
	}
	return parts[4]
}

// callerAccount is the account the request's identity belongs to.
func (req *s3Req) callerAccount() string {
	if a := s3AccountOf(req.id.PrincipalARN); a != "" {
		return a
	}
	if a := s3AccountOf(req.id.RoleARN); a != "" {
		return a
	}
	return DefaultAccountID
}

func s3NewRequestID() string { return strings.ToUpper(s3RandHex(8)) }

// Errors.

func s3AsError(err error, code string, status int) *Error {
	var e *Error
	if errors.As(err, &e) {
		if e.Status == 0 {
			c := *e
			c.Status = status
			return &c
		}
		return e
	}
	return &Error{Code: code, Status: status, Message: err.Error()}
}

func s3ErrNoSuchBucket(string) *Error {
	return &Error{Code: "NoSuchBucket", Status: http.StatusNotFound, Message: "The specified bucket does not exist"}
}

func s3ErrNoSuchKey(string) *Error {
	return &Error{Code: "NoSuchKey", Status: http.StatusNotFound, Message: "The specified key does not exist."}
}

func s3ErrPrecondition(header string) *Error {
	return &Error{Code: "PreconditionFailed", Status: http.StatusPreconditionFailed,
		Message: "At least one of the pre-conditions you specified did not hold (" + header + ")"}
}

func s3ErrWrongRegion(got, want string) *Error {
	return &Error{Code: "AuthorizationHeaderMalformed", Status: http.StatusBadRequest, Region: want,
		Message: fmt.Sprintf("The authorization header is malformed; the region '%s' is wrong; expecting '%s'", got, want)}
}

func s3ErrNotImplemented(what string) *Error {
	msg := "A header or query you provided implies functionality that is not implemented"
	if what != "" {
		msg += ": " + what
	}
	return &Error{Code: "NotImplemented", Status: http.StatusNotImplemented, Message: msg}
}

func s3ErrMethodNotAllowed(method, what string) *Error {
	return &Error{Code: "MethodNotAllowed", Status: http.StatusMethodNotAllowed,
		Message: fmt.Sprintf("The specified method (%s) is not allowed against %s.", method, what)}
}

func s3ErrMalformedXML(detail string) *Error {
	return &Error{Code: "MalformedXML", Status: http.StatusBadRequest,
		Message: "The XML you provided was not well-formed or did not validate against our published schema: " + detail}
}

func s3ErrInvalidArgument(msg string) *Error {
	return &Error{Code: "InvalidArgument", Status: http.StatusBadRequest, Message: msg}
}

type s3ErrorXML struct {
	XMLName    xml.Name `xml:"Error"`
	Code       string   `xml:"Code"`
	Message    string   `xml:"Message"`
	BucketName string   `xml:"BucketName,omitempty"`
	Key        string   `xml:"Key,omitempty"`
	Region     string   `xml:"Region,omitempty"`
	Resource   string   `xml:"Resource"`
	RequestID  string   `xml:"RequestId"`
	HostID     string   `xml:"HostId"`
}

// fail answers with err as S3 does: an XML error document, or the status alone for HEAD.
func (s *S3Server) fail(req *s3Req, rid string, err error) {
	var e *Error
	if !errors.As(err, &e) {
		s.log.Error("s3: internal error", "op", req.op, "method", req.r.Method, "bucket", req.bucket, "key", req.key, "error", err)
		e = &Error{Code: "InternalError", Status: http.StatusInternalServerError, Message: "We encountered an internal error. Please try again."}
	}
	status := e.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	req.errMsg = e.Code + ": " + e.Message
	h := req.w.Header()
	for _, k := range []string{"ETag", "Last-Modified", "Content-Range", "Accept-Ranges"} {
		h.Del(k)
	}
	if e.Region != "" {
		h.Set("X-Amz-Bucket-Region", e.Region)
	}
	if req.r.Method == http.MethodHead {
		req.w.WriteHeader(status)
		return
	}
	doc := s3ErrorXML{Code: e.Code, Message: e.Message, Region: e.Region, Resource: req.r.URL.Path, RequestID: rid, HostID: rid}
	switch e.Code {
	case "NoSuchBucket", "BucketNotEmpty", "BucketAlreadyOwnedByYou", "BucketAlreadyExists":
		doc.BucketName = req.bucket
	case "NoSuchKey":
		doc.Key = req.key
	}
	s3WriteXML(req.w, status, doc)
}

// s3WriteXML writes v as the XML body of a response.
func s3WriteXML(w http.ResponseWriter, status int, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		body = []byte("<Error><Code>InternalError</Code><Message>could not encode the response</Message></Error>")
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(xml.Header)+len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}
