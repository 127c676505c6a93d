package localaws

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Payload hash values with a meaning of their own.
const (
	unsignedPayload        = "UNSIGNED-PAYLOAD"
	streamingSigned        = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	streamingSignedTrailer = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	streamingUnsigned      = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	emptySHA256            = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	amzDateFormat          = "20060102T150405Z"
	maxSkew                = 15 * time.Minute
)

// SignedRequest is what a verified SigV4 signature says about a request.
type SignedRequest struct {
	AccessKeyID string
	Region      string
	Service     string
	Signature   string
	SignedAt    time.Time
	// Scope is DATE/REGION/SERVICE/aws4_request.
	Scope string
	// PayloadHash is x-amz-content-sha256, or the body's hash when that header is absent.
	PayloadHash string
	SigningKey  []byte
}

// Streaming reports an aws-chunked body.
func (s SignedRequest) Streaming() bool { return strings.HasPrefix(s.PayloadHash, "STREAMING-") }

func sigErr(code string, status int, format string, args ...any) *Error {
	return &Error{Code: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

// VerifyRequest checks the request's AWS Signature Version 4 (Authorization header or presigned query)
// against the keys of dir and returns who signed it.
func VerifyRequest(r *http.Request, dir *Directory, now time.Time) (Identity, SignedRequest, error) {
	var (
		sr            SignedRequest
		signedHeaders []string
		amzDate       string
		token         string
		presigned     = r.URL.Query().Get("X-Amz-Algorithm") != ""
	)
	q := r.URL.Query()
	if presigned {
		if q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" {
			return Identity{}, sr, sigErr("AuthorizationQueryParametersError", 400, "X-Amz-Algorithm must be AWS4-HMAC-SHA256")
		}
		if err := parseCredential(q.Get("X-Amz-Credential"), &sr); err != nil {
			return Identity{}, sr, err
		}
		signedHeaders = strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
		sr.Signature = q.Get("X-Amz-Signature")
		amzDate = q.Get("X-Amz-Date")
		token = q.Get("X-Amz-Security-Token")
		sr.PayloadHash = unsignedPayload
	} else {
		auth := r.Header.Get("Authorization")
		if auth == "" {
			return Identity{}, sr, sigErr("AccessDenied", 403, "Access Denied: the request is not signed")
		}
		rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
		if !ok {
			return Identity{}, sr, sigErr("AuthorizationHeaderMalformed", 400, "only AWS4-HMAC-SHA256 signatures are supported")
		}
		for _, part := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			switch k {
			case "Credential":
				if err := parseCredential(v, &sr); err != nil {
					return Identity{}, sr, err
				}
			case "SignedHeaders":
				signedHeaders = strings.Split(v, ";")
			case "Signature":
				sr.Signature = v
			}
		}
		if sr.AccessKeyID == "" || len(signedHeaders) == 0 || sr.Signature == "" {
			return Identity{}, sr, sigErr("AuthorizationHeaderMalformed", 400, "the authorization header lacks Credential, SignedHeaders or Signature")
		}
		amzDate = r.Header.Get("X-Amz-Date")
		token = r.Header.Get("X-Amz-Security-Token")
		sr.PayloadHash = r.Header.Get("X-Amz-Content-Sha256")
	}
	t, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return Identity{}, sr, sigErr("AccessDenied", 403, "X-Amz-Date is missing or malformed")
	}
	sr.SignedAt = t
	if presigned {
		exp, _ := strconv.Atoi(q.Get("X-Amz-Expires"))
		if now.After(t.Add(time.Duration(exp) * time.Second)) {
			return Identity{}, sr, sigErr("AccessDenied", 403, "Request has expired")
		}
	} else if d := now.Sub(t); d > maxSkew || d < -maxSkew {
		return Identity{}, sr, sigErr("RequestTimeTooSkewed", 403, "The difference between the request time and the current time is too large.")
	}

	id, ok := dir.Lookup(sr.AccessKeyID)
	if !ok {
		return Identity{}, sr, sigErr("InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records.")
	}
	if id.SessionToken != "" && token != id.SessionToken {
		return Identity{}, sr, sigErr("InvalidToken", 400, "The provided token is malformed or otherwise invalid.")
	}
	if !id.Expires.IsZero() && now.After(id.Expires) {
		return Identity{}, sr, sigErr("ExpiredToken", 400, "The provided token has expired.")
	}

	if sr.PayloadHash == "" {
		// Services other than S3 sign the body's hash without sending it: hash the body ourselves.
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return Identity{}, sr, sigErr("IncompleteBody", 400, "could not read the body: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sum := sha256.Sum256(body)
		sr.PayloadHash = hex.EncodeToString(sum[:])
	}

	canonical := canonicalRequest(r, signedHeaders, sr.PayloadHash, presigned)
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + sr.Scope + "\n" + hexSHA256([]byte(canonical))
	sr.SigningKey = signingKey(id.SecretAccessKey, sr.Scope)
	want := hex.EncodeToString(hmacSHA256(sr.SigningKey, sts))
	if !hmac.Equal([]byte(want), []byte(sr.Signature)) {
		return Identity{}, sr, sigErr("SignatureDoesNotMatch", 403, "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
	}
	return id, sr, nil
}

func parseCredential(v string, sr *SignedRequest) error {
	parts := strings.Split(v, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return sigErr("AuthorizationHeaderMalformed", 400, "Credential must be KEY/DATE/REGION/SERVICE/aws4_request, got %q", v)
	}
	sr.AccessKeyID, sr.Region, sr.Service = parts[0], parts[2], parts[3]
	sr.Scope = strings.Join(parts[1:], "/")
	return nil
}

func canonicalRequest(r *http.Request, signedHeaders []string, payloadHash string, presigned bool) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(r))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery, presigned))
	b.WriteByte('\n')
	for _, h := range signedHeaders {
		b.WriteString(h)
		b.WriteByte(':')
		b.WriteString(headerValue(r, h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// canonicalURI is the path exactly as sent: S3 clients encode it once and sign that.
func canonicalURI(r *http.Request) string {
	p := r.RequestURI
	if p == "" {
		p = r.URL.EscapedPath()
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if u, err := url.Parse(p); err == nil && u.Host != "" {
		p = u.EscapedPath() // absolute-form request target
	}
	if p == "" {
		p = "/"
	}
	return p
}

func canonicalQuery(raw string, presigned bool) string {
	type kv struct{ k, v string }
	var pairs []kv
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, _ = url.QueryUnescape(k)
		v, _ = url.QueryUnescape(v)
		if presigned && k == "X-Amz-Signature" {
			continue
		}
		pairs = append(pairs, kv{awsEscape(k), awsEscape(v)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	out := make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = p.k + "=" + p.v
	}
	return strings.Join(out, "&")
}

// awsEscape percent-encodes everything but the unreserved characters, as SigV4 requires.
func awsEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return r.Host
	case "content-length":
		if v := r.Header.Get("Content-Length"); v != "" {
			return v
		}
		return strconv.FormatInt(r.ContentLength, 10)
	}
	vals := r.Header.Values(name)
	if name == "transfer-encoding" && len(vals) == 0 {
		vals = r.TransferEncoding
	}
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

func signingKey(secret, scope string) []byte {
	parts := strings.Split(scope, "/")
	k := hmacSHA256([]byte("AWS4"+secret), parts[0])
	for _, p := range parts[1:] {
		k = hmacSHA256(k, p)
	}
	return k
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// NewHashCheckingReader passes body through and fails at its end if its SHA-256 is not wantHex.
func NewHashCheckingReader(body io.Reader, wantHex string) io.Reader {
	return &hashChecker{r: body, h: sha256.New(), want: strings.ToLower(wantHex)}
}

type hashChecker struct {
	r    io.Reader
	h    hash.Hash
	want string
}

func (c *hashChecker) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	if errors.Is(err, io.EOF) && hex.EncodeToString(c.h.Sum(nil)) != c.want {
		return n, sigErr("XAmzContentSHA256Mismatch", 400, "The provided 'x-amz-content-sha256' header does not match what was computed.")
	}
	return n, err
}

// NewChunkedReader decodes an aws-chunked body: "<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n"
// chunks, ending with a zero chunk and optional trailers. Signed chunks are verified, each chained to the
// previous signature starting from the request's. The trailers are returned by the second value once
// the body has been read to its end.
func NewChunkedReader(body io.Reader, sr SignedRequest) (io.Reader, func() map[string]string) {
	c := &chunked{br: bufio.NewReaderSize(body, 64<<10), sr: sr, prev: sr.Signature, signed: strings.HasPrefix(sr.PayloadHash, streamingSigned), trailers: map[string]string{}}
	return c, func() map[string]string { return c.trailers }
}

type chunked struct {
	br       *bufio.Reader
	sr       SignedRequest
	signed   bool
	prev     string
	left     int64
	done     bool
	trailers map[string]string
}

func (c *chunked) Read(p []byte) (int, error) {
	for c.left == 0 {
		if c.done {
			return 0, io.EOF
		}
		if err := c.next(); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := io.ReadFull(c.br, p)
	c.left -= int64(n)
	if err != nil {
		return n, sigErr("IncompleteBody", 400, "the chunked body ended early")
	}
	if c.left == 0 {
		if crlf, err := c.br.Peek(2); err == nil && string(crlf) == "\r\n" {
			_, _ = c.br.Discard(2)
		}
	}
	return n, nil
}

// next reads a chunk header, verifies a signed chunk (which needs its data, at most a few MiB), and
// leaves the data to be read.
func (c *chunked) next() error {
	line, err := c.br.ReadString('\n')
	if err != nil {
		return sigErr("IncompleteBody", 400, "the chunked body ended early")
	}
	line = strings.TrimRight(line, "\r\n")
	sizeHex, ext, _ := strings.Cut(line, ";")
	size, err := strconv.ParseInt(sizeHex, 16, 64)
	if err != nil || size < 0 {
		return sigErr("InvalidArgument", 400, "malformed chunk header %q", line)
	}
	if c.signed {
		sig, ok := strings.CutPrefix(ext, "chunk-signature=")
		if !ok {
			return sigErr("SignatureDoesNotMatch", 403, "a chunk lacks its signature")
		}
		data, err := c.br.Peek(int(size))
		if err != nil && size > 0 {
			// Larger than the buffer: read it into memory to verify before passing it on.
			buf := make([]byte, size)
			if _, err := io.ReadFull(c.br, buf); err != nil {
				return sigErr("IncompleteBody", 400, "the chunked body ended early")
			}
			c.br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(buf), c.br), 64<<10)
			data = buf
		}
		sts := "AWS4-HMAC-SHA256-PAYLOAD\n" + c.sr.SignedAt.Format(amzDateFormat) + "\n" + c.sr.Scope + "\n" + c.prev + "\n" + emptySHA256 + "\n" + hexSHA256(data)
		want := hex.EncodeToString(hmacSHA256(c.sr.SigningKey, sts))
		if !hmac.Equal([]byte(want), []byte(sig)) {
			return sigErr("SignatureDoesNotMatch", 403, "a chunk signature does not match")
		}
		c.prev = sig
	}
	if size > 0 {
		c.left = size
		return nil
	}
	// The last chunk: trailers until an empty line.
	c.done = true
	for {
		tl, err := c.br.ReadString('\n')
		tl = strings.TrimRight(tl, "\r\n")
		if tl == "" || err != nil {
			return nil
		}
		k, v, _ := strings.Cut(tl, ":")
		c.trailers[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
}
