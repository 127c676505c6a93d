package localaws

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// The S3 tests run the real aws-sdk-go-v2 S3 client against an S3Server behind httptest.

const (
	s3tRegion     = "us-west-2"
	s3tBucket     = "cust-bucket"
	s3tCustomer   = "111111111111"
	s3tRoleARN    = "arn:aws:iam::111111111111:role/segment-s3"
	s3tNoACLRole  = "arn:aws:iam::111111111111:role/no-acl"
	s3tAdminKey   = "AKIAS3TESTADMIN00001"
	s3tSessionKey = "ASIAS3TESTSESSION001"
	s3tNoACLKey   = "ASIAS3TESTSESSION002"
)

// s3tReferencePolicy is the reference's permission policy for the customer role.
const s3tReferencePolicy = `{
    "Version": "2012-10-17",
    "Statement": [
        {
        "Sid": "PutObjectsInBucket",
        "Effect": "Allow",
        "Action": [
            "s3:PutObject",
            "s3:PutObjectAcl"
        ],
        "Resource": "arn:aws:s3:::BUCKET/segment-logs/*"
        }
  ]
}`

func s3tPolicy(t *testing.T, doc string) Policy {
	t.Helper()
	var p Policy
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		t.Fatalf("policy: %v", err)
	}
	return p
}

type s3tEnv struct {
	t       *testing.T
	dataDir string
	useTLS  bool
	dir     *Directory
	srv     *S3Server
	hs      *httptest.Server
	now     atomic.Pointer[time.Time]
	logs    *s3tLogBuffer
}

// s3tNewEnv starts an S3Server with an admin, a session of a role with the reference's permission
// policy, a session of a role without s3:PutObjectAcl, and the customer's bucket in us-west-2.
func s3tNewEnv(t *testing.T, useTLS bool) *s3tEnv {
	t.Helper()
	e := &s3tEnv{t: t, dataDir: t.TempDir(), useTLS: useTLS}
	e.start()
	if err := e.srv.EnsureBucket(Bucket{Name: s3tBucket, Account: s3tCustomer}); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.EnsureBucket(Bucket{Name: "staging", Region: s3tRegion}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *s3tEnv) directory() *Directory {
	t := e.t
	dir := NewDirectory()
	dir.AddIdentity(Identity{AccessKeyID: s3tAdminKey, SecretAccessKey: "admin-secret", PrincipalARN: "arn:aws:iam::000000000000:root", Admin: true})
	dir.PutRole(Role{ARN: s3tRoleARN, PermissionPolicies: []Policy{s3tPolicy(t, strings.ReplaceAll(s3tReferencePolicy, "BUCKET", s3tBucket))}})
	dir.PutRole(Role{ARN: s3tNoACLRole, PermissionPolicies: []Policy{s3tPolicy(t,
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::`+s3tBucket+`/segment-logs/*"}]}`)}})
	exp := time.Now().Add(time.Hour)
	dir.AddIdentity(Identity{AccessKeyID: s3tSessionKey, SecretAccessKey: "session-secret", SessionToken: "session-token-1",
		PrincipalARN: s3tRoleARN, RoleARN: s3tRoleARN, SessionName: "s3dest", Expires: exp})
	dir.AddIdentity(Identity{AccessKeyID: s3tNoACLKey, SecretAccessKey: "session-secret-2", SessionToken: "session-token-2",
		PrincipalARN: s3tNoACLRole, RoleARN: s3tNoACLRole, SessionName: "s3dest", Expires: exp})
	return dir
}

func (e *s3tEnv) start() {
	t := e.t
	t.Helper()
	e.dir = e.directory()
	srv, err := NewS3Server(e.dir, S3Config{DataDir: e.dataDir, Region: s3tRegion,
		Logger: e.logger(), Now: func() time.Time {
			if p := e.now.Load(); p != nil {
				return *p
			}
			return time.Now()
		}})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	if e.useTLS {
		e.hs = httptest.NewTLSServer(srv)
	} else {
		e.hs = httptest.NewServer(srv)
	}
	t.Cleanup(e.hs.Close)
}

// logger collects the server's log lines; at the end of the test they must hold no secret.
func (e *s3tEnv) logger() *slog.Logger {
	if e.logs == nil {
		e.logs = &s3tLogBuffer{}
		e.t.Cleanup(func() {
			logs := e.logs.String()
			for _, secret := range []string{"admin-secret", "session-secret", "session-token"} {
				if strings.Contains(logs, secret) {
					e.t.Errorf("the log holds a secret (%s)", secret)
				}
			}
			if testing.Verbose() {
				e.t.Log(logs)
			}
		})
	}
	return slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type s3tLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *s3tLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *s3tLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// restart stops the server and starts a new one, with a new Directory, on the same data dir.
func (e *s3tEnv) restart() {
	e.hs.Close()
	e.start()
}

func (e *s3tEnv) httpClient() *awshttp.BuildableClient {
	c := awshttp.NewBuildableClient()
	if e.useTLS {
		pool := x509.NewCertPool()
		pool.AddCert(e.hs.Certificate())
		c = c.WithTransportOptions(func(tr *http.Transport) { tr.TLSClientConfig = &tls.Config{RootCAs: pool} })
	}
	return c
}

// client is an S3 client with the SDK's default checksum behaviour (what config.LoadDefaultConfig
// gives: a CRC32 on every upload, validation of downloads).
func (e *s3tEnv) client(key, region string, opts ...func(*s3.Options)) *s3.Client {
	secrets := map[string][2]string{
		s3tAdminKey:   {"admin-secret", ""},
		s3tSessionKey: {"session-secret", "session-token-1"},
		s3tNoACLKey:   {"session-secret-2", "session-token-2"},
	}
	sec := secrets[key]
	return s3.New(s3.Options{Region: region, BaseEndpoint: aws.String(e.hs.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(key, sec[0], sec[1]),
		HTTPClient:  e.httpClient(), RetryMaxAttempts: 1,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported}, opts...)
}

func (e *s3tEnv) admin() *s3.Client   { return e.client(s3tAdminKey, s3tRegion) }
func (e *s3tEnv) session() *s3.Client { return e.client(s3tSessionKey, s3tRegion) }

func s3tCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func s3tStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}

func s3tPut(t *testing.T, c *s3.Client, bucket, key string, body []byte, mod ...func(*s3.PutObjectInput)) (*s3.PutObjectOutput, error) {
	t.Helper()
	in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}
	for _, m := range mod {
		m(in)
	}
	return c.PutObject(context.Background(), in)
}

func s3tGet(t *testing.T, c *s3.Client, bucket, key string) ([]byte, *s3.GetObjectOutput) {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatalf("GetObject %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read %s/%s: %v", bucket, key, err)
	}
	return data, out
}

func s3tRandom(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func TestS3RoleSessionIsJudgedByItsRolesPermissionPolicy(t *testing.T) {
	e := s3tNewEnv(t, false)
	ctx := context.Background()
	sess := e.session()
	acl := func(in *s3.PutObjectInput) { in.ACL = types.ObjectCannedACLBucketOwnerFullControl }

	// Allowed: PutObject + PutObjectAcl under segment-logs/.
	key := "segment-logs/src1/1700000000000/batch-1.gz"
	if _, err := s3tPut(t, sess, s3tBucket, key, []byte("hello"), acl); err != nil {
		t.Fatalf("PutObject under segment-logs/ with the ACL: %v", err)
	}
	// Elsewhere: denied, and nothing stored.
	_, err := s3tPut(t, sess, s3tBucket, "elsewhere/x.gz", []byte("nope"), acl)
	if s3tCode(err) != "AccessDenied" || s3tStatus(err) != 403 {
		t.Fatalf("PutObject outside segment-logs/: got %v, want AccessDenied", err)
	}
	if _, err := e.admin().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s3tBucket), Key: aws.String("elsewhere/x.gz")}); s3tStatus(err) != 404 {
		t.Fatalf("a denied write must store nothing; HeadObject: %v", err)
	}
	// The role may not read, nor list.
	if _, err := sess.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s3tBucket), Key: aws.String(key)}); s3tCode(err) != "AccessDenied" {
		t.Fatalf("GetObject by a write-only role: got %v, want AccessDenied", err)
	}
	if _, err := sess.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s3tBucket)}); s3tCode(err) != "AccessDenied" {
		t.Fatalf("ListObjectsV2 by a write-only role: got %v, want AccessDenied", err)
	}

	// The ACL was recorded: the bucket owner has FULL_CONTROL.
	got, err := e.admin().GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: aws.String(s3tBucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObjectAcl: %v", err)
	}
	found := false
	for _, g := range got.Grants {
		if g.Grantee != nil && aws.ToString(g.Grantee.ID) == s3tCustomer && g.Permission == types.PermissionFullControl && g.Grantee.Type == types.TypeCanonicalUser {
			found = true
		}
	}
	if !found {
		t.Fatalf("GetObjectAcl grants %+v lack the bucket owner's FULL_CONTROL", got.Grants)
	}
	// Without an ACL header the object is private: only its owner's grant.
	if _, err := s3tPut(t, sess, s3tBucket, "segment-logs/private.gz", []byte("x")); err != nil {
		t.Fatal(err)
	}
	got, err = e.admin().GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: aws.String(s3tBucket), Key: aws.String("segment-logs/private.gz")})
	if err != nil || len(got.Grants) != 1 {
		t.Fatalf("GetObjectAcl of a private object: %+v, %v", got, err)
	}

	// A role without s3:PutObjectAcl: the ACL header makes the write need it.
	noACL := e.client(s3tNoACLKey, s3tRegion)
	_, err = s3tPut(t, noACL, s3tBucket, "segment-logs/acl.gz", []byte("x"), acl)
	if s3tCode(err) != "AccessDenied" {
		t.Fatalf("PutObject with an ACL by a role without s3:PutObjectAcl: got %v, want AccessDenied", err)
	}
	if !strings.Contains(err.Error(), "s3:PutObjectAcl") {
		t.Errorf("the denial should name s3:PutObjectAcl: %v", err)
	}
	if _, err := s3tPut(t, noACL, s3tBucket, "segment-logs/acl.gz", []byte("x")); err != nil {
		t.Fatalf("PutObject without an ACL by a role with s3:PutObject: %v", err)
	}
	// Also for a multipart upload.
	_, err = noACL.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(s3tBucket), Key: aws.String("segment-logs/mpu.gz"), ACL: types.ObjectCannedACLBucketOwnerFullControl})
	if s3tCode(err) != "AccessDenied" {
		t.Fatalf("CreateMultipartUpload with an ACL by a role without s3:PutObjectAcl: got %v, want AccessDenied", err)
	}
	// And PutObjectAcl itself.
	_, err = noACL.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: aws.String(s3tBucket), Key: aws.String("segment-logs/acl.gz"), ACL: types.ObjectCannedACLBucketOwnerFullControl})
	if s3tCode(err) != "AccessDenied" {
		t.Fatalf("PutObjectAcl without s3:PutObjectAcl: got %v, want AccessDenied", err)
	}
	if _, err := sess.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: aws.String(s3tBucket), Key: aws.String("segment-logs/acl.gz"), ACL: types.ObjectCannedACLBucketOwnerFullControl}); err != nil {
		t.Fatalf("PutObjectAcl with s3:PutObjectAcl: %v", err)
	}

	// Unknown keys and bad signatures.
	bad := s3.New(s3.Options{Region: s3tRegion, BaseEndpoint: aws.String(e.hs.URL), UsePathStyle: true, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(s3tSessionKey, "wrong-secret", "session-token-1"), HTTPClient: e.httpClient()})
	if _, err := s3tPut(t, bad, s3tBucket, "segment-logs/y.gz", []byte("x")); s3tCode(err) != "SignatureDoesNotMatch" {
		t.Fatalf("wrong secret: got %v, want SignatureDoesNotMatch", err)
	}
}

func TestS3IfNoneMatchWritesOnce(t *testing.T) {
	e := s3tNewEnv(t, false)
	ctx := context.Background()
	c := e.session()
	key := "segment-logs/once.gz"
	inm := func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }
	if _, err := s3tPut(t, c, s3tBucket, key, []byte("first"), inm); err != nil {
		t.Fatal(err)
	}
	_, err := s3tPut(t, c, s3tBucket, key, []byte("second"), inm)
	if s3tCode(err) != "PreconditionFailed" || s3tStatus(err) != 412 {
		t.Fatalf("second conditional write: got %v, want 412 PreconditionFailed", err)
	}
	if data, _ := s3tGet(t, e.admin(), s3tBucket, key); string(data) != "first" {
		t.Fatalf("object is %q after a refused overwrite", data)
	}

	// Many writers at once: exactly one wins, and its bytes are the object.
	var wins, fails atomic.Int32
	var winner atomic.Value
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Appendf(nil, "writer-%d-%s", i, strings.Repeat("x", 1000*i))
			_, err := s3tPut(t, c, s3tBucket, "segment-logs/race.gz", body, inm)
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(string(body))
			case s3tStatus(err) == 412:
				fails.Add(1)
			default:
				t.Errorf("writer %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || fails.Load() != 15 {
		t.Fatalf("%d writers won and %d got 412; want 1 and 15", wins.Load(), fails.Load())
	}
	if data, _ := s3tGet(t, e.admin(), s3tBucket, "segment-logs/race.gz"); string(data) != winner.Load().(string) {
		t.Fatalf("the stored object is not the winner's")
	}

	// A multipart upload completes conditionally too.
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(s3tBucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	part, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(s3tBucket), Key: aws.String(key), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader([]byte("p1"))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(s3tBucket), Key: aws.String(key), UploadId: up.UploadId, IfNoneMatch: aws.String("*"),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: part.ETag, ChecksumCRC32: part.ChecksumCRC32}}}})
	if s3tStatus(err) != 412 {
		t.Fatalf("conditional CompleteMultipartUpload onto an existing key: got %v, want 412", err)
	}
}

func s3tMultipart(t *testing.T, useTLS bool) {
	e := s3tNewEnv(t, useTLS)
	ctx := context.Background()
	data := s3tRandom(12<<20+12345, 7)
	tm := transfermanager.New(e.session(), func(o *transfermanager.Options) {
		o.PartSizeBytes = 5 << 20
		o.MultipartUploadThreshold = 5 << 20
		o.Concurrency = 3
	})
	key := "segment-logs/src/1700000000000/big.gz"
	out, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String(s3tBucket), Key: aws.String(key),
		Body: bytes.NewReader(data), ACL: tmtypes.ObjectCannedACLBucketOwnerFullControl, ContentType: aws.String("application/gzip")})
	if err != nil {
		t.Fatalf("UploadObject: %v", err)
	}
	if etag := aws.ToString(out.ETag); !strings.HasSuffix(etag, `-3"`) {
		t.Errorf("multipart ETag %s, want md5-of-md5s-3", etag)
	}
	got, head := s3tGet(t, e.admin(), s3tBucket, key)
	if !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes that differ from the %d uploaded", len(got), len(data))
	}
	if aws.ToString(head.ContentType) != "application/gzip" || head.ServerSideEncryption != types.ServerSideEncryptionAes256 {
		t.Errorf("headers: content-type %q, sse %q", aws.ToString(head.ContentType), head.ServerSideEncryption)
	}
	// The ETag is md5 of the parts' md5s, and the parts can be fetched by number.
	var sums []byte
	for off := 0; off < len(data); off += 5 << 20 {
		s := md5.Sum(data[off:min(off+5<<20, len(data))])
		sums = append(sums, s[:]...)
	}
	want := md5.Sum(sums)
	if aws.ToString(head.ETag) != fmt.Sprintf(`"%x-3"`, want) {
		t.Errorf("ETag %s, want \"%x-3\"", aws.ToString(head.ETag), want)
	}
	dl := transfermanager.New(e.admin(), func(o *transfermanager.Options) { o.Concurrency = 2 })
	gout, err := dl.GetObject(ctx, &transfermanager.GetObjectInput{Bucket: aws.String(s3tBucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("transfermanager GetObject: %v", err)
	}
	got, err = io.ReadAll(gout.Body)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("transfermanager GetObject (by parts): %d bytes, err %v", len(got), err)
	}
	// A range.
	rg, err := e.admin().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s3tBucket), Key: aws.String(key), Range: aws.String("bytes=100-199"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(rg.Body)
	rg.Body.Close()
	if !bytes.Equal(part, data[100:200]) || aws.ToString(rg.ContentRange) != fmt.Sprintf("bytes 100-199/%d", len(data)) {
		t.Fatalf("range: %d bytes, Content-Range %q", len(part), aws.ToString(rg.ContentRange))
	}
	// Nothing is left in uploads/ or tmp/.
	for _, d := range []string{"uploads", "tmp"} {
		if entries, _ := os.ReadDir(filepath.Join(e.dataDir, d)); len(entries) != 0 {
			t.Errorf("%s/ holds %d entries after the upload", d, len(entries))
		}
	}
}

func TestS3MultipartUploadRoundTrips(t *testing.T)        { s3tMultipart(t, false) }
func TestS3MultipartUploadRoundTripsOverTLS(t *testing.T) { s3tMultipart(t, true) }

func TestS3MultipartUploadByHand(t *testing.T) {
	e := s3tNewEnv(t, false)
	ctx := context.Background()
	c := e.admin()
	b, k := aws.String("staging"), aws.String("by/hand")
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k, ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	if err != nil {
		t.Fatal(err)
	}
	p1 := s3tRandom(5<<20, 1)
	p2 := []byte("tail")
	var parts []types.CompletedPart
	for i, body := range [][]byte{p1, p2} {
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)),
			Body: bytes.NewReader(body), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
		if err != nil {
			t.Fatalf("UploadPart %d: %v", i+1, err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag, ChecksumSHA256: out.ChecksumSHA256})
	}
	lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: k, UploadId: up.UploadId})
	if err != nil || len(lp.Parts) != 2 || aws.ToInt64(lp.Parts[0].Size) != 5<<20 {
		t.Fatalf("ListParts: %+v, %v", lp, err)
	}
	lu, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: b})
	if err != nil || len(lu.Uploads) != 1 || aws.ToString(lu.Uploads[0].UploadId) != aws.ToString(up.UploadId) {
		t.Fatalf("ListMultipartUploads: %+v, %v", lu, err)
	}
	// Parts out of order, and a wrong ETag, are refused.
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{parts[1], parts[0]}}})
	if s3tCode(err) != "InvalidPartOrder" {
		t.Fatalf("parts out of order: %v", err)
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{parts[0], {PartNumber: aws.Int32(2), ETag: aws.String(`"00"`)}}}})
	if s3tCode(err) != "InvalidPart" {
		t.Fatalf("wrong ETag: %v", err)
	}
	// A restart in the middle keeps the upload.
	e.restart()
	c = e.admin()
	done, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		t.Fatalf("CompleteMultipartUpload after a restart: %v", err)
	}
	if !strings.HasSuffix(aws.ToString(done.ChecksumSHA256), "-2") {
		t.Errorf("composite checksum %q, want ...-2", aws.ToString(done.ChecksumSHA256))
	}
	got, _ := s3tGet(t, c, "staging", "by/hand")
	if !bytes.Equal(got, append(append([]byte{}, p1...), p2...)) {
		t.Fatal("multipart object differs from its parts")
	}
	// Too small a non-last part.
	up2, _ := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k})
	var small []types.CompletedPart
	for i := range 2 {
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: up2.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: strings.NewReader("small")})
		if err != nil {
			t.Fatal(err)
		}
		small = append(small, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag})
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: up2.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: small}})
	if s3tCode(err) != "EntityTooSmall" {
		t.Fatalf("small parts: %v", err)
	}
	// An upload created without a checksum algorithm whose parts carry the SDK's default CRC32.
	up3, _ := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("no-alg")})
	var noAlg []types.CompletedPart
	for i, body := range [][]byte{p1, p2} {
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("no-alg"), UploadId: up3.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(body)})
		if err != nil || aws.ToString(out.ChecksumCRC32) == "" {
			t.Fatalf("UploadPart with the default checksum: %+v %v", out, err)
		}
		noAlg = append(noAlg, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("no-alg"), UploadId: up3.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: noAlg}}); err != nil {
		t.Fatalf("CompleteMultipartUpload of parts with checksums into an upload without an algorithm: %v", err)
	}
	if got, _ := s3tGet(t, c, "staging", "no-alg"); len(got) != len(p1)+len(p2) {
		t.Fatalf("no-alg object has %d bytes", len(got))
	}
	if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: k, UploadId: up2.UploadId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: up2.UploadId, PartNumber: aws.Int32(3), Body: strings.NewReader("x")}); s3tCode(err) != "NoSuchUpload" {
		t.Fatalf("UploadPart after abort: %v", err)
	}
}

func TestS3ListObjectsV2PaginatesWithDelimiter(t *testing.T) {
	e := s3tNewEnv(t, false)
	ctx := context.Background()
	c := e.admin()
	keys := []string{"a.txt", "b/1", "b/2", "b/3/x", "c", "d/1", "e/1", "e/2", "f", "g/h/i", "z", "ü/ö", "segment-logs/x/1", "segment-logs/x/2", "segment-logs/y/1"}
	for _, k := range keys {
		if _, err := s3tPut(t, c, "staging", k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	// Paginated with a delimiter, three entries a page.
	var gotKeys, gotPrefixes []string
	pages := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("staging"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(3)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, o := range page.Contents {
			gotKeys = append(gotKeys, aws.ToString(o.Key))
		}
		for _, cp := range page.CommonPrefixes {
			gotPrefixes = append(gotPrefixes, aws.ToString(cp.Prefix))
		}
		if n := len(page.Contents) + len(page.CommonPrefixes); n > 3 || int(aws.ToInt32(page.KeyCount)) != n {
			t.Fatalf("page of %d entries, KeyCount %d", n, aws.ToInt32(page.KeyCount))
		}
	}
	wantKeys := []string{"a.txt", "c", "f", "z"}
	wantPrefixes := []string{"b/", "d/", "e/", "g/", "segment-logs/", "ü/"}
	if fmt.Sprint(gotKeys) != fmt.Sprint(wantKeys) || fmt.Sprint(gotPrefixes) != fmt.Sprint(wantPrefixes) || pages != 4 {
		t.Fatalf("got keys %v prefixes %v in %d pages; want %v %v in 4", gotKeys, gotPrefixes, pages, wantKeys, wantPrefixes)
	}
	// With a prefix and no delimiter, every key in order, paginated by 2 (the s3check way).
	var all []string
	p = s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("staging"), Prefix: aws.String("segment-logs/"), MaxKeys: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			all = append(all, aws.ToString(o.Key))
		}
	}
	if fmt.Sprint(all) != "[segment-logs/x/1 segment-logs/x/2 segment-logs/y/1]" {
		t.Fatalf("prefix listing: %v", all)
	}
	// The whole bucket, lexically.
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("staging")})
	if err != nil {
		t.Fatal(err)
	}
	var flat []string
	for _, o := range out.Contents {
		flat = append(flat, aws.ToString(o.Key))
	}
	sorted := append([]string{}, keys...)
	sort.Strings(sorted)
	if fmt.Sprint(flat) != fmt.Sprint(sorted) {
		t.Fatalf("full listing %v, want %v", flat, sorted)
	}
	// start-after, nested delimiter, and v1.
	out, err = c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("staging"), Prefix: aws.String("b/"), Delimiter: aws.String("/"), StartAfter: aws.String("b/1")})
	if err != nil || len(out.Contents) != 1 || aws.ToString(out.Contents[0].Key) != "b/2" || len(out.CommonPrefixes) != 1 || aws.ToString(out.CommonPrefixes[0].Prefix) != "b/3/" {
		t.Fatalf("start-after within a prefix: %+v %v", out, err)
	}
	v1, err := c.ListObjects(ctx, &s3.ListObjectsInput{Bucket: aws.String("staging"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(5)})
	if err != nil || len(v1.Contents)+len(v1.CommonPrefixes) != 5 || !aws.ToBool(v1.IsTruncated) || aws.ToString(v1.NextMarker) != "e/" {
		t.Fatalf("ListObjects v1: %+v, %v", v1, err)
	}
	v1, err = c.ListObjects(ctx, &s3.ListObjectsInput{Bucket: aws.String("staging"), Delimiter: aws.String("/"), Marker: v1.NextMarker})
	if err != nil || len(v1.Contents)+len(v1.CommonPrefixes) != 5 || aws.ToBool(v1.IsTruncated) {
		t.Fatalf("ListObjects v1 second page: %+v, %v", v1, err)
	}
}

func TestS3ObjectsSurviveARestart(t *testing.T) {
	e := s3tNewEnv(t, false)
	ctx := context.Background()
	keys := map[string][]byte{
		"segment-logs/a/1.gz":  []byte("one"),
		"../../../../etc/evil": []byte("dots"),
		"ünïcødé/ключ/空白 key":  []byte("unicode"),
		"double//slash/":       []byte("slashes"),
		"big":                  s3tRandom(3<<20, 3),
	}
	for k, v := range keys {
		if _, err := s3tPut(t, e.admin(), s3tBucket, k, v, func(in *s3.PutObjectInput) {
			in.Metadata = map[string]string{"source": "test"}
			in.ContentEncoding = aws.String("gzip")
		}); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
	}
	if _, err := e.admin().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s3tBucket), Key: aws.String("big")}); err != nil {
		t.Fatal(err)
	}
	delete(keys, "big")
	if _, err := e.admin().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("made-by-api"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintUsWest2}}); err != nil {
		t.Fatal(err)
	}

	e.restart()
	c := e.admin()
	for k, v := range keys {
		got, out := s3tGet(t, c, s3tBucket, k)
		if !bytes.Equal(got, v) || out.Metadata["source"] != "test" || aws.ToString(out.ContentEncoding) != "gzip" {
			t.Fatalf("after restart %q: %q, meta %v, encoding %q", k, got, out.Metadata, aws.ToString(out.ContentEncoding))
		}
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s3tBucket), Key: aws.String("big")}); s3tStatus(err) != 404 {
		t.Fatalf("a deleted object came back: %v", err)
	}
	if b, ok := e.dir.Bucket("made-by-api"); !ok || b.Region != s3tRegion {
		t.Fatalf("bucket created through the API not registered after restart: %+v %v", b, ok)
	}
	if b, ok := e.dir.Bucket(s3tBucket); !ok || b.Account != s3tCustomer {
		t.Fatalf("bucket account not kept: %+v", b)
	}
	// Every file the store wrote is inside DataDir/buckets/<bucket>/objects.
	err := filepath.WalkDir(e.dataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(e.dataDir, path)
		if parts := strings.Split(rel, string(filepath.Separator)); parts[0] != "buckets" || (len(parts) != 3 && len(parts) != 4) {
			t.Errorf("unexpected file %s", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A stray temp file and an orphaned data file are cleaned up on start.
	os.WriteFile(filepath.Join(e.dataDir, "tmp", "body-123"), []byte("torn"), 0o600)
	orphan := filepath.Join(e.dataDir, "buckets", s3tBucket, "objects", s3KeyHash("x")+".deadbeef.data")
	os.WriteFile(orphan, []byte("orphan"), 0o600)
	e.restart()
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("orphaned data file survived a restart: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.dataDir, "tmp")); len(entries) != 0 {
		t.Errorf("tmp/ not emptied on start")
	}
}

func TestS3WrongRegionNamesTheBucketsRegion(t *testing.T) {
	e := s3tNewEnv(t, false)
	ctx := context.Background()
	c := e.client(s3tSessionKey, "eu-west-1")
	_, err := s3tPut(t, c, s3tBucket, "segment-logs/x.gz", []byte("x"))
	if s3tCode(err) != "AuthorizationHeaderMalformed" || s3tStatus(err) != 400 {
		t.Fatalf("wrong region: got %v", err)
	}
	if !strings.Contains(err.Error(), "the region 'eu-west-1' is wrong; expecting 'us-west-2'") {
		t.Errorf("message does not name the regions: %v", err)
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response.Header.Get("X-Amz-Bucket-Region") != s3tRegion {
		t.Errorf("x-amz-bucket-region %q", re.Response.Header.Get("X-Amz-Bucket-Region"))
	}
	// The raw error document has <Region>.
	resp := s3tRaw(t, e, http.MethodPut, "/"+s3tBucket+"/segment-logs/raw", "eu-west-1", []byte("x"), nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "<Region>us-west-2</Region>") || !strings.Contains(string(body), "<RequestId>") {
		t.Errorf("raw wrong-region error: %d %s", resp.StatusCode, body)
	}
	// HeadBucket: 301 with the region.
	_, err = e.client(s3tAdminKey, "eu-west-1").HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s3tBucket)})
	if s3tStatus(err) != 301 || !errors.As(err, &re) || re.Response.Header.Get("X-Amz-Bucket-Region") != s3tRegion {
		t.Fatalf("HeadBucket from the wrong region: %v", err)
	}
	hb, err := e.admin().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s3tBucket)})
	if err != nil || aws.ToString(hb.BucketRegion) != s3tRegion {
		t.Fatalf("HeadBucket: %+v %v", hb, err)
	}
	loc, err := e.client(s3tAdminKey, "us-east-1").GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String(s3tBucket)})
	if err != nil || loc.LocationConstraint != types.BucketLocationConstraintUsWest2 {
		t.Fatalf("GetBucketLocation: %+v %v", loc, err)
	}
	// A missing bucket and a missing key.
	if _, err := s3tPut(t, e.admin(), "no-such-bucket", "k", []byte("x")); s3tCode(err) != "NoSuchBucket" || s3tStatus(err) != 404 {
		t.Fatalf("missing bucket: %v", err)
	}
	if _, err := e.admin().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s3tBucket), Key: aws.String("nope")}); s3tCode(err) != "NoSuchKey" {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := e.admin().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s3tBucket), Key: aws.String("nope")}); s3tStatus(err) != 404 {
		t.Fatalf("HEAD missing key: %v", err)
	}
}

// unseekable hides a reader's Seek, as a pipe would.
type s3tUnseekable struct{ r io.Reader }

func (u s3tUnseekable) Read(p []byte) (int, error) { return u.r.Read(p) }

func TestS3UnseekableBodyUsesAWSChunkedTrailers(t *testing.T) {
	e := s3tNewEnv(t, true)
	data := s3tRandom(1<<20+17, 11)
	_, err := s3tPut(t, e.session(), s3tBucket, "segment-logs/stream.gz", nil, func(in *s3.PutObjectInput) {
		in.Body = s3tUnseekable{bytes.NewReader(data)}
		in.ContentLength = aws.Int64(int64(len(data)))
		in.ACL = types.ObjectCannedACLBucketOwnerFullControl
	})
	if err != nil {
		t.Fatalf("PutObject with an unseekable body: %v", err)
	}
	got, out := s3tGet(t, e.admin(), s3tBucket, "segment-logs/stream.gz")
	if !bytes.Equal(got, data) {
		t.Fatal("round trip differs")
	}
	sum := crc32.ChecksumIEEE(data)
	want := base64.StdEncoding.EncodeToString([]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)})
	if aws.ToString(out.ChecksumCRC32) != want {
		t.Errorf("stored CRC32 %q, want %q (the trailer's)", aws.ToString(out.ChecksumCRC32), want)
	}
	if aws.ToString(out.ContentEncoding) != "" {
		t.Errorf("aws-chunked leaked into Content-Encoding: %q", aws.ToString(out.ContentEncoding))
	}
	// Unknown length too.
	_, err = s3tPut(t, e.session(), s3tBucket, "segment-logs/stream2.gz", nil, func(in *s3.PutObjectInput) {
		in.Body = s3tUnseekable{bytes.NewReader(data)}
	})
	if err != nil {
		t.Fatalf("PutObject with an unseekable body of unknown length: %v", err)
	}
	if got, _ := s3tGet(t, e.admin(), s3tBucket, "segment-logs/stream2.gz"); !bytes.Equal(got, data) {
		t.Fatal("round trip of unknown length differs")
	}
	// A client that computes checksums only when required (as s3dest's is) streams it unsigned.
	whenRequired := e.client(s3tSessionKey, s3tRegion, func(o *s3.Options) {
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
	_, err = s3tPut(t, whenRequired, s3tBucket, "segment-logs/stream3.gz", nil, func(in *s3.PutObjectInput) {
		in.Body = s3tUnseekable{bytes.NewReader(data)}
		in.ContentLength = aws.Int64(int64(len(data)))
	})
	if err != nil {
		t.Fatalf("PutObject with an unseekable body, checksums when required: %v", err)
	}
	if got, _ := s3tGet(t, e.admin(), s3tBucket, "segment-logs/stream3.gz"); !bytes.Equal(got, data) {
		t.Fatal("round trip (checksums when required) differs")
	}
}

// s3tRaw sends a request signed by the admin key with the SDK's signer; the payload hash is the body's
// unless headers set X-Amz-Content-Sha256.
func s3tRaw(t *testing.T, e *s3tEnv, method, path, region string, body []byte, headers map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, e.hs.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	payload := req.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		s := sha256.Sum256(body)
		payload = hex.EncodeToString(s[:])
		req.Header.Set("X-Amz-Content-Sha256", payload)
	}
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: s3tAdminKey, SecretAccessKey: "admin-secret"},
		req, payload, "s3", region, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := e.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestS3IntegrityMismatchStoresNothing(t *testing.T) {
	e := s3tNewEnv(t, false)
	ctx := context.Background()
	c := e.admin()
	body := []byte("the real body")
	absent := func(key string) {
		t.Helper()
		if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("staging"), Key: aws.String(key)}); s3tStatus(err) != 404 {
			t.Fatalf("%s was stored: %v", key, err)
		}
	}
	// A wrong x-amz-checksum-crc32 (the SDK sends what it is given).
	_, err := s3tPut(t, c, "staging", "crc", body, func(in *s3.PutObjectInput) { in.ChecksumCRC32 = aws.String("AAAAAA==") })
	if s3tCode(err) != "BadDigest" {
		t.Fatalf("wrong CRC32: %v", err)
	}
	absent("crc")
	// A wrong Content-MD5.
	_, err = s3tPut(t, c, "staging", "md5", body, func(in *s3.PutObjectInput) { in.ContentMD5 = aws.String("1B2M2Y8AsgTpgAmY7PhCfg==") })
	if s3tCode(err) != "BadDigest" {
		t.Fatalf("wrong Content-MD5: %v", err)
	}
	absent("md5")
	// A body that is not the one signed.
	other := sha256.Sum256([]byte("another body"))
	resp := s3tRaw(t, e, http.MethodPut, "/staging/sha", s3tRegion, body, map[string]string{"X-Amz-Content-Sha256": hex.EncodeToString(other[:])})
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(msg), "XAmzContentSHA256Mismatch") {
		t.Fatalf("x-amz-content-sha256 mismatch: %d %s", resp.StatusCode, msg)
	}
	absent("sha")
	// An aws-chunked body whose trailer checksum is wrong.
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n", len(body), body)
	resp = s3tRaw(t, e, http.MethodPut, "/staging/trailer", s3tRegion, []byte(chunked), map[string]string{
		"X-Amz-Content-Sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "Content-Encoding": "aws-chunked",
		"X-Amz-Trailer": "x-amz-checksum-crc32", "X-Amz-Decoded-Content-Length": fmt.Sprint(len(body))})
	msg, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(msg), "BadDigest") {
		t.Fatalf("trailer mismatch: %d %s", resp.StatusCode, msg)
	}
	absent("trailer")
	// The same with the right trailer is stored.
	sum := crc32.ChecksumIEEE(body)
	good := base64.StdEncoding.EncodeToString([]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)})
	chunked = fmt.Sprintf("%x\r\n%s\r\n0\r\nx-amz-checksum-crc32:%s\r\n\r\n", len(body), body, good)
	resp = s3tRaw(t, e, http.MethodPut, "/staging/trailer", s3tRegion, []byte(chunked), map[string]string{
		"X-Amz-Content-Sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "Content-Encoding": "aws-chunked",
		"X-Amz-Trailer": "x-amz-checksum-crc32", "X-Amz-Decoded-Content-Length": fmt.Sprint(len(body))})
	if resp.StatusCode != 200 {
		msg, _ = io.ReadAll(resp.Body)
		t.Fatalf("good trailer: %d %s", resp.StatusCode, msg)
	}
	if got, _ := s3tGet(t, c, "staging", "trailer"); !bytes.Equal(got, body) {
		t.Fatalf("aws-chunked body stored as %q", got)
	}
	// A part with a wrong checksum is refused too.
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("staging"), Key: aws.String("mpu"), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("staging"), Key: aws.String("mpu"), UploadId: up.UploadId, PartNumber: aws.Int32(1),
		Body: bytes.NewReader(body), ChecksumCRC32: aws.String("AAAAAA==")})
	if s3tCode(err) != "BadDigest" {
		t.Fatalf("part with a wrong checksum: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.dataDir, "tmp")); len(entries) != 0 {
		t.Errorf("tmp/ holds %d files after refused writes", len(entries))
	}
}

func TestS3ObjectOperations(t *testing.T) {
	e := s3tNewEnv(t, false)
	ctx := context.Background()
	c := e.admin()
	b := aws.String("staging")
	body := []byte("0123456789abcdefghij")
	put, err := s3tPut(t, c, "staging", "obj", body, func(in *s3.PutObjectInput) {
		in.ContentType = aws.String("text/plain")
		in.ServerSideEncryption = types.ServerSideEncryptionAwsKms
		in.SSEKMSKeyId = aws.String("arn:aws:kms:us-west-2:000000000000:key/k")
	})
	if err != nil {
		t.Fatal(err)
	}
	md := md5.Sum(body)
	if aws.ToString(put.ETag) != fmt.Sprintf(`"%x"`, md) {
		t.Fatalf("ETag %s", aws.ToString(put.ETag))
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("obj")})
	if err != nil || aws.ToInt64(head.ContentLength) != int64(len(body)) || head.ServerSideEncryption != types.ServerSideEncryptionAwsKms ||
		aws.ToString(head.SSEKMSKeyId) == "" || aws.ToString(head.ContentType) != "text/plain" {
		t.Fatalf("HeadObject: %+v %v", head, err)
	}
	// Conditional reads.
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("obj"), IfNoneMatch: put.ETag})
	if s3tStatus(err) != 304 {
		t.Fatalf("If-None-Match with the ETag: %v", err)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("obj"), IfMatch: aws.String(`"nope"`)})
	if s3tStatus(err) != 412 {
		t.Fatalf("If-Match with another ETag: %v", err)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("obj"), IfModifiedSince: aws.Time(time.Now().Add(time.Hour))})
	if s3tStatus(err) != 304 {
		t.Fatalf("If-Modified-Since in the future: %v", err)
	}
	// Ranges.
	for rg, want := range map[string]string{"bytes=0-4": "01234", "bytes=15-": "fghij", "bytes=-3": "hij", "bytes=18-100": "ij"} {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("obj"), Range: aws.String(rg), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatalf("%s: %v", rg, err)
		}
		got, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if string(got) != want {
			t.Errorf("%s: %q, want %q", rg, got, want)
		}
	}
	if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("obj"), Range: aws.String("bytes=50-")}); s3tCode(err) != "InvalidRange" {
		t.Fatalf("unsatisfiable range: %v", err)
	}
	// Copy, within and across buckets.
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(s3tBucket), Key: aws.String("copied/ö"), CopySource: aws.String("staging/obj"),
		ACL: types.ObjectCannedACLBucketOwnerFullControl}); err != nil {
		t.Fatalf("CopyObject: %v", err)
	}
	got, out := s3tGet(t, c, s3tBucket, "copied/ö")
	if !bytes.Equal(got, body) || aws.ToString(out.ContentType) != "text/plain" {
		t.Fatalf("copy: %q %q", got, aws.ToString(out.ContentType))
	}
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("obj"), CopySource: aws.String("staging/obj")}); s3tCode(err) != "InvalidRequest" {
		t.Fatalf("copy onto itself unchanged: %v", err)
	}
	// DeleteObjects.
	for _, k := range []string{"d1", "d2", "d3"} {
		if _, err := s3tPut(t, c, "staging", k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	del, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String("d1")}, {Key: aws.String("d2")}, {Key: aws.String("never")}}}})
	if err != nil || len(del.Deleted) != 3 || len(del.Errors) != 0 {
		t.Fatalf("DeleteObjects: %+v %v", del, err)
	}
	lst, _ := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, Prefix: aws.String("d")})
	if len(lst.Contents) != 1 || aws.ToString(lst.Contents[0].Key) != "d3" {
		t.Fatalf("after DeleteObjects: %+v", lst.Contents)
	}
	// Buckets.
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("eu-bucket"), CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintEuWest1}}); s3tCode(err) != "IllegalLocationConstraintException" {
		t.Fatalf("a location constraint from another region's endpoint: %v", err)
	}
	eu := e.client(s3tAdminKey, "eu-west-1")
	if _, err := eu.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("eu-bucket"), CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintEuWest1}}); err != nil {
		t.Fatalf("CreateBucket in eu-west-1: %v", err)
	}
	if _, err := eu.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("eu-bucket")}); s3tCode(err) != "BucketAlreadyOwnedByYou" {
		t.Fatalf("CreateBucket again: %v", err)
	}
	lb, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil || len(lb.Buckets) != 3 {
		t.Fatalf("ListBuckets: %+v %v", lb, err)
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: b}); s3tCode(err) != "BucketNotEmpty" {
		t.Fatalf("DeleteBucket of a non-empty bucket: %v", err)
	}
	if _, err := eu.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("eu-bucket")}); err != nil {
		t.Fatalf("DeleteBucket: %v", err)
	}
	if _, err := eu.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("eu-bucket")}); s3tStatus(err) != 404 {
		t.Fatalf("HeadBucket after delete: %v", err)
	}
	// Unsupported operations say so.
	if _, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: aws.String("obj")}); s3tCode(err) != "NotImplemented" {
		t.Fatalf("GetObjectTagging: %v", err)
	}
}

// A 100 MB object goes through without the server holding it in memory.
func TestS3LargeObjectStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads 100 MB; skipped under -short")
	}
	e := s3tNewEnv(t, false)
	const size = 100 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	src := io.LimitReader(&s3tPRNG{state: 42}, size)
	req, _ := http.NewRequest(http.MethodPut, e.hs.URL+"/staging/big", src)
	req.ContentLength = size
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: s3tAdminKey, SecretAccessKey: "admin-secret"},
		req, "UNSIGNED-PAYLOAD", "s3", s3tRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT 100 MB: %d", resp.StatusCode)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Errorf("uploading 100 MB allocated %d MB", grew>>20)
	}
	out, err := e.admin().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("staging"), Key: aws.String("big"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	h := md5.New()
	n, err := io.Copy(h, out.Body)
	out.Body.Close()
	if err != nil || n != size || aws.ToString(out.ETag) != fmt.Sprintf(`"%x"`, h.Sum(nil)) {
		t.Fatalf("GET 100 MB: %d bytes, %v, ETag %s vs %x", n, err, aws.ToString(out.ETag), h.Sum(nil))
	}
}

type s3tPRNG struct{ state uint64 }

func (p *s3tPRNG) Read(b []byte) (int, error) {
	for i := range b {
		p.state = p.state*6364136223846793005 + 1442695040888963407
		b[i] = byte(p.state >> 56)
	}
	return len(b), nil
}

// Malformed requests get S3 errors, never a 5xx or a panic.
func TestS3BadRequestsGetClearErrors(t *testing.T) {
	e := s3tNewEnv(t, false)
	cases := []struct {
		method, path string
		body         string
		headers      map[string]string
		status       int
		code         string
	}{
		{"POST", "/staging?delete", "<Delete><Object><Key>a", nil, 400, "MalformedXML"},
		{"POST", "/staging/k?uploadId=zz", "<x/>", nil, 404, "NoSuchUpload"},
		{"POST", "/staging/k?uploadId=0123456789abcdef0123456789abcdef", "<x/>", nil, 404, "NoSuchUpload"},
		{"PUT", "/staging/k?partNumber=1&uploadId=../../etc", "x", nil, 404, "NoSuchUpload"},
		{"GET", "/staging?list-type=2&max-keys=-1", "", nil, 400, "InvalidArgument"},
		{"GET", "/staging?list-type=2&continuation-token=!!!", "", nil, 400, "InvalidArgument"},
		{"PUT", "/staging/k", "x", map[string]string{"Content-MD5": "not-base64"}, 400, "InvalidDigest"},
		{"PUT", "/staging/k", "x", map[string]string{"X-Amz-Checksum-Crc32": "zz"}, 400, "InvalidRequest"},
		{"PUT", "/staging/k", "x", map[string]string{"X-Amz-Acl": "everyone-may"}, 400, "InvalidArgument"},
		{"PUT", "/staging/k", "x", map[string]string{"If-None-Match": `"abc"`}, 501, "NotImplemented"},
		{"PUT", "/staging/k", "x", map[string]string{"X-Amz-Server-Side-Encryption": "rot13"}, 400, "InvalidArgument"},
		{"PUT", "/staging/" + strings.Repeat("k", 1025), "x", nil, 400, "KeyTooLongError"},
		{"PUT", "/Bad_Bucket", "", nil, 400, "InvalidBucketName"},
		{"GET", "/staging?tagging", "", nil, 501, "NotImplemented"},
		{"PATCH", "/staging/k", "", nil, 405, "MethodNotAllowed"},
		{"PUT", "/staging/k", "x", map[string]string{"X-Amz-Copy-Source": "staging"}, 400, "InvalidArgument"},
		{"PUT", "/staging/k", "x", map[string]string{"X-Amz-Copy-Source": "staging/none"}, 404, "NoSuchKey"},
		{"GET", "/staging/k?partNumber=0", "", nil, 404, "NoSuchKey"},
	}
	for _, tc := range cases {
		resp := s3tRaw(t, e, tc.method, tc.path, s3tRegion, []byte(tc.body), tc.headers)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status || !strings.Contains(string(body), "<Code>"+tc.code+"</Code>") {
			t.Errorf("%s %s: %d %s; want %d %s", tc.method, tc.path, resp.StatusCode, body, tc.status, tc.code)
		}
	}
	// Unsigned requests are refused.
	resp, err := http.Get(e.hs.URL + "/staging/k")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("unsigned GET: %d", resp.StatusCode)
	}
}

// Clients such as minio-go send signed aws-chunked bodies over plain HTTP.
func TestS3SignedChunkedBody(t *testing.T) {
	e := s3tNewEnv(t, false)
	data := s3tRandom(200<<10+3, 5)
	now := time.Now().UTC()
	send := func(key string, tamper bool) *http.Response {
		const chunk = 64 << 10
		req, _ := http.NewRequest(http.MethodPut, e.hs.URL+"/staging/"+key, nil)
		req.Header.Set("X-Amz-Content-Sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
		req.Header.Set("Content-Encoding", "aws-chunked")
		req.Header.Set("X-Amz-Decoded-Content-Length", fmt.Sprint(len(data)))
		var lengths []int
		for off := 0; off < len(data); off += chunk {
			lengths = append(lengths, min(chunk, len(data)-off))
		}
		lengths = append(lengths, 0)
		total := 0
		for _, n := range lengths {
			total += len(fmt.Sprintf("%x;chunk-signature=", n)) + 64 + 2 + n + 2
		}
		req.ContentLength = int64(total)
		req.Header.Set("Content-Length", fmt.Sprint(total))
		creds := aws.Credentials{AccessKeyID: s3tAdminKey, SecretAccessKey: "admin-secret"}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "s3", s3tRegion, now); err != nil {
			t.Fatal(err)
		}
		auth := req.Header.Get("Authorization")
		prev := auth[strings.LastIndex(auth, "Signature=")+len("Signature="):]
		hm := func(key []byte, s string) []byte {
			m := s3tHMAC(key)
			m.Write([]byte(s))
			return m.Sum(nil)
		}
		date := now.Format("20060102")
		k := hm(hm(hm(hm([]byte("AWS4admin-secret"), date), s3tRegion), "s3"), "aws4_request")
		scope := date + "/" + s3tRegion + "/s3/aws4_request"
		var body bytes.Buffer
		off := 0
		for _, n := range lengths {
			c := data[off : off+n]
			off += n
			sum := sha256.Sum256(c)
			sts := "AWS4-HMAC-SHA256-PAYLOAD\n" + now.Format("20060102T150405Z") + "\n" + scope + "\n" + prev + "\n" +
				"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n" + hex.EncodeToString(sum[:])
			sig := hex.EncodeToString(hm(k, sts))
			prev = sig
			payload := c
			if tamper && n > 0 && off == n {
				payload = append([]byte{c[0] ^ 1}, c[1:]...)
			}
			fmt.Fprintf(&body, "%x;chunk-signature=%s\r\n", n, sig)
			body.Write(payload)
			body.WriteString("\r\n")
		}
		req.Body = io.NopCloser(&body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := send("signed", false); resp.StatusCode != 200 {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("signed chunked PUT: %d %s", resp.StatusCode, msg)
	}
	if got, out := s3tGet(t, e.admin(), "staging", "signed"); !bytes.Equal(got, data) || aws.ToString(out.ContentEncoding) != "" {
		t.Fatalf("signed chunked body stored as %d bytes, encoding %q", len(got), aws.ToString(out.ContentEncoding))
	}
	if resp := send("tampered", true); resp.StatusCode != 403 {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("tampered chunk: %d %s", resp.StatusCode, msg)
	}
	if _, err := e.admin().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("staging"), Key: aws.String("tampered")}); s3tStatus(err) != 404 {
		t.Fatalf("a tampered body was stored: %v", err)
	}
}

func s3tHMAC(key []byte) hash.Hash { return hmac.New(sha256.New, key) }

// Random signed requests built from S3's vocabulary never get a 5xx (but 501) nor panic.
func TestS3RandomRequestsNeverFailInternally(t *testing.T) {
	e := s3tNewEnv(t, false)
	for _, k := range []string{"a", "b/c", "d"} {
		if _, err := s3tPut(t, e.admin(), "staging", k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	up, err := e.admin().CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{Bucket: aws.String("staging"), Key: aws.String("a")})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	methods := []string{"GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS"}
	paths := []string{"/", "/staging", "/staging/", "/staging/a", "/staging/b/c", "/staging/zz", "/nope/a", "/" + s3tBucket + "/x", "/staging/../a", "/staging//a"}
	params := []string{"", "acl", "uploads", "uploadId=" + aws.ToString(up.UploadId), "uploadId=bad", "partNumber=1", "partNumber=99999", "partNumber=x",
		"delete", "location", "versioning", "encryption", "list-type=2", "max-keys=0", "max-keys=2", "delimiter=/", "prefix=b", "continuation-token=YQ",
		"start-after=b", "marker=a", "encoding-type=url", "encoding-type=xml", "max-parts=1", "part-number-marker=x", "tagging", "x-id=PutObject", "versionId=3"}
	headers := []string{"", "Range: bytes=0-0", "Range: bytes=5-1", "Range: bytes=-0", "Range: bytes=0-", "If-None-Match: *", "If-Match: \"x\"",
		"If-Modified-Since: garbage", "X-Amz-Acl: public-read", "X-Amz-Grant-Read: id=\"1\"", "X-Amz-Grant-Read: nonsense", "X-Amz-Copy-Source: staging/a",
		"X-Amz-Copy-Source: /staging/b%2Fc?versionId=null", "X-Amz-Copy-Source: %%", "X-Amz-Metadata-Directive: REPLACE", "X-Amz-Checksum-Sha256: AAAA",
		"X-Amz-Sdk-Checksum-Algorithm: SHA512", "X-Amz-Sdk-Checksum-Algorithm: XXHASH3", "X-Amz-Trailer: x-amz-checksum-crc32", "X-Amz-Checksum-Algorithm: CRC32",
		"X-Amz-Checksum-Type: FULL_OBJECT", "X-Amz-Storage-Class: GLACIER", "X-Amz-Expected-Bucket-Owner: 1", "X-Amz-Checksum-Mode: ENABLED", "Content-Md5: AAAAAAAAAAAAAAAAAAAAAA=="}
	bodies := []string{"", "x", "<Delete><Object><Key>a</Key></Object></Delete>", "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>",
		"<CreateBucketConfiguration><LocationConstraint>us-west-2</LocationConstraint></CreateBucketConfiguration>", "<AccessControlPolicy><AccessControlList><Grant><Grantee><ID>1</ID></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>", "<<<"}
	codes := map[int]int{}
	defer func() { t.Logf("statuses: %v", codes) }()
	for i := range 3000 {
		method, path := pick(methods...), pick(paths...)
		q := []string{pick(params...), pick(params...)}
		target := path + "?" + strings.Join(q, "&")
		body := pick(bodies...)
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		for range 2 {
			if h := pick(headers...); h != "" {
				k, v, _ := strings.Cut(h, ": ")
				req.Header.Set(k, v)
			}
		}
		sum := sha256.Sum256([]byte(body))
		payload := hex.EncodeToString(sum[:])
		if req.Header.Get("X-Amz-Trailer") != "" {
			payload = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
		}
		req.Header.Set("X-Amz-Content-Sha256", payload)
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: s3tAdminKey, SecretAccessKey: "admin-secret"},
			req, payload, "s3", s3tRegion, time.Now()); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		codes[rec.Code]++
		if rec.Code >= 500 && rec.Code != 501 {
			t.Fatalf("request %d %s %s %v: %d %s", i, method, target, req.Header, rec.Code, rec.Body.String())
		}
	}
}
