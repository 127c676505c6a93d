package localaws

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func (s *S3Server) listBuckets(req *s3Req) error {
	if err := s.authorize(req, nil, "s3:ListAllMyBuckets", "arn:aws:s3:::*"); err != nil {
		return err
	}
	type bucketXML struct {
		Name         string `xml:"Name"`
		CreationDate string `xml:"CreationDate"`
		BucketRegion string `xml:"BucketRegion"`
	}
	var out struct {
		XMLName xml.Name    `xml:"ListAllMyBucketsResult"`
		Xmlns   string      `xml:"xmlns,attr"`
		Owner   s3OwnerXML  `xml:"Owner"`
		Buckets []bucketXML `xml:"Buckets>Bucket"`
	}
	out.Xmlns = s3XMLNS
	account := req.callerAccount()
	out.Owner = s3OwnerXML{ID: account}
	for _, bm := range s.st.bucketMetas() {
		// Like S3: the buckets of the caller's account (an admin sees all).
		if req.id.Admin || bm.Account == account {
			out.Buckets = append(out.Buckets, bucketXML{bm.Name, bm.Created.UTC().Format(s3ISOTime), bm.Region})
		}
	}
	s3WriteXML(req.w, http.StatusOK, out)
	return nil
}

func (s *S3Server) createBucket(req *s3Req) error {
	if !s3ValidBucketName(req.bucket) {
		return &Error{Code: "InvalidBucketName", Status: 400, Message: "The specified bucket is not valid: use 3-63 lowercase letters, digits, dots and hyphens."}
	}
	if err := s.authorize(req, nil, "s3:CreateBucket", s3BucketARN(req.bucket)); err != nil {
		return err
	}
	body, err := s.readSmallBody(req, 64<<10, true)
	if err != nil {
		return err
	}
	region := req.sr.Region
	if strings.TrimSpace(string(body)) != "" {
		var cfg struct {
			LocationConstraint string `xml:"LocationConstraint"`
		}
		if err := xml.Unmarshal(body, &cfg); err != nil {
			return s3ErrMalformedXML(err.Error())
		}
		if c := cfg.LocationConstraint; c != "" {
			if c != req.sr.Region && req.sr.Region != "us-east-1" {
				return &Error{Code: "IllegalLocationConstraintException", Status: 400,
					Message: "The " + c + " location constraint is incompatible for the region specific endpoint this request was sent to."}
			}
			region = c
		}
	}
	if region == "" {
		region = s.cfg.Region
	}
	account := req.callerAccount()
	if bs, ok := s.st.bucket(req.bucket); ok {
		if bs.meta.Account == account {
			return &Error{Code: "BucketAlreadyOwnedByYou", Status: 409, Message: "Your previous request to create the named bucket succeeded and you already own it."}
		}
		return &Error{Code: "BucketAlreadyExists", Status: 409, Message: "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."}
	}
	b, _ := s.dir.Bucket(req.bucket)
	b.Name, b.Region, b.Account = req.bucket, region, account
	if err := s.EnsureBucket(b); err != nil {
		return err
	}
	req.w.Header().Set("Location", "/"+req.bucket)
	req.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *S3Server) headBucket(req *s3Req) error {
	b, _, err := s.bucketFor(req, req.bucket, false)
	var e *Error
	if errors.As(err, &e) && e.Region != "" {
		// S3 redirects a HeadBucket signed for the wrong region, naming the right one.
		req.w.Header().Set("X-Amz-Bucket-Region", e.Region)
		req.w.WriteHeader(http.StatusMovedPermanently)
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.authorize(req, &b, "s3:ListBucket", s3BucketARN(req.bucket)); err != nil {
		return err
	}
	req.w.Header().Set("X-Amz-Bucket-Region", b.Region)
	req.w.Header().Set("X-Amz-Access-Point-Alias", "false")
	req.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *S3Server) deleteBucket(req *s3Req) error {
	b, _, err := s.bucketFor(req, req.bucket, false)
	if err != nil {
		return err
	}
	if err := s.authorize(req, &b, "s3:DeleteBucket", s3BucketARN(req.bucket)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.st.deleteBucket(req.bucket); err != nil {
		return err
	}
	s.deleted[req.bucket] = true
	// The Directory may not be able to forget a bucket; if it can, it should.
	if d, ok := any(s.dir).(interface{ DeleteBucket(string) }); ok {
		d.DeleteBucket(req.bucket)
	}
	s.abortUploadsOf(req.bucket)
	req.w.WriteHeader(http.StatusNoContent)
	return nil
}

// abortUploadsOf removes the multipart uploads in progress into a deleted bucket.
func (s *S3Server) abortUploadsOf(bucket string) {
	for _, u := range s.uploads() {
		if u.Bucket == bucket {
			_ = os.RemoveAll(filepath.Join(s.st.root, "uploads", u.ID))
		}
	}
}

func (s *S3Server) bucketLocation(req *s3Req) error {
	// GetBucketLocation answers whatever region the request was signed for: it is how clients find out.
	b, _, err := s.bucketFor(req, req.bucket, true)
	if err != nil {
		return err
	}
	if err := s.authorize(req, &b, "s3:GetBucketLocation", s3BucketARN(req.bucket)); err != nil {
		return err
	}
	loc := b.Region
	if loc == "us-east-1" {
		loc = ""
	}
	s3WriteXML(req.w, http.StatusOK, struct {
		XMLName xml.Name `xml:"LocationConstraint"`
		Xmlns   string   `xml:"xmlns,attr"`
		Value   string   `xml:",chardata"`
	}{Xmlns: s3XMLNS, Value: loc})
	return nil
}

func (s *S3Server) bucketVersioning(req *s3Req) error {
	b, _, err := s.bucketFor(req, req.bucket, false)
	if err != nil {
		return err
	}
	if err := s.authorize(req, &b, "s3:GetBucketVersioning", s3BucketARN(req.bucket)); err != nil {
		return err
	}
	s3WriteXML(req.w, http.StatusOK, struct {
		XMLName xml.Name `xml:"VersioningConfiguration"`
		Xmlns   string   `xml:"xmlns,attr"`
	}{Xmlns: s3XMLNS})
	return nil
}

func (s *S3Server) bucketEncryption(req *s3Req) error {
	b, _, err := s.bucketFor(req, req.bucket, false)
	if err != nil {
		return err
	}
	if err := s.authorize(req, &b, "s3:GetEncryptionConfiguration", s3BucketARN(req.bucket)); err != nil {
		return err
	}
	type rule struct {
		Algorithm        string `xml:"ApplyServerSideEncryptionByDefault>SSEAlgorithm"`
		BucketKeyEnabled bool   `xml:"BucketKeyEnabled"`
	}
	s3WriteXML(req.w, http.StatusOK, struct {
		XMLName xml.Name `xml:"ServerSideEncryptionConfiguration"`
		Xmlns   string   `xml:"xmlns,attr"`
		Rule    rule     `xml:"Rule"`
	}{Xmlns: s3XMLNS, Rule: rule{Algorithm: "AES256"}})
	return nil
}

type s3ObjectXML struct {
	Key               string      `xml:"Key"`
	LastModified      string      `xml:"LastModified"`
	ETag              string      `xml:"ETag"`
	ChecksumAlgorithm string      `xml:"ChecksumAlgorithm,omitempty"`
	ChecksumType      string      `xml:"ChecksumType,omitempty"`
	Size              int64       `xml:"Size"`
	Owner             *s3OwnerXML `xml:"Owner,omitempty"`
	StorageClass      string      `xml:"StorageClass"`
}

type s3PrefixXML struct {
	Prefix string `xml:"Prefix"`
}

type s3ListResultXML struct {
	XMLName               xml.Name      `xml:"ListBucketResult"`
	Xmlns                 string        `xml:"xmlns,attr"`
	Name                  string        `xml:"Name"`
	Prefix                string        `xml:"Prefix"`
	Marker                *string       `xml:"Marker"`
	NextMarker            string        `xml:"NextMarker,omitempty"`
	ContinuationToken     string        `xml:"ContinuationToken,omitempty"`
	NextContinuationToken string        `xml:"NextContinuationToken,omitempty"`
	StartAfter            string        `xml:"StartAfter,omitempty"`
	KeyCount              *int          `xml:"KeyCount"`
	MaxKeys               int           `xml:"MaxKeys"`
	Delimiter             string        `xml:"Delimiter,omitempty"`
	EncodingType          string        `xml:"EncodingType,omitempty"`
	IsTruncated           bool          `xml:"IsTruncated"`
	Contents              []s3ObjectXML `xml:"Contents"`
	CommonPrefixes        []s3PrefixXML `xml:"CommonPrefixes"`
}

// listObjects serves ListObjects (v1) and ListObjectsV2: keys in lexical (byte) order, prefixes rolled
// up at the delimiter, pages of max-keys entries (objects and common prefixes) at most 1000.
func (s *S3Server) listObjects(req *s3Req, v2 bool) error {
	b, bs, err := s.bucketFor(req, req.bucket, false)
	if err != nil {
		return err
	}
	if err := s.authorize(req, &b, "s3:ListBucket", s3BucketARN(req.bucket)); err != nil {
		return err
	}
	q := req.q
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	maxKeys := 1000
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return s3ErrInvalidArgument("max-keys must be a non-negative integer")
		}
		maxKeys = min(n, 1000)
	}
	encoding := q.Get("encoding-type")
	if encoding != "" && encoding != "url" {
		return s3ErrInvalidArgument("Invalid Encoding Method specified in Request (only url is supported)")
	}
	enc := func(s string) string { return s }
	if encoding == "url" {
		enc = url.QueryEscape
	}

	after := ""
	token := q.Get("continuation-token")
	if v2 {
		after = q.Get("start-after")
		if q.Has("continuation-token") {
			raw, err := base64.RawURLEncoding.DecodeString(token)
			if err != nil || token == "" {
				return s3ErrInvalidArgument("The continuation token provided is incorrect")
			}
			after = string(raw)
		}
	} else {
		after = q.Get("marker")
	}

	var entries []s3ListEntry
	truncated := false
	if maxKeys > 0 {
		entries, truncated = bs.list(prefix, delim, after, maxKeys)
	}
	fetchOwner := !v2 || q.Get("fetch-owner") == "true"
	out := s3ListResultXML{Xmlns: s3XMLNS, Name: req.bucket, Prefix: enc(prefix), MaxKeys: maxKeys,
		Delimiter: enc(delim), EncodingType: encoding, IsTruncated: truncated}
	last := ""
	for _, e := range entries {
		if e.Object == nil {
			out.CommonPrefixes = append(out.CommonPrefixes, s3PrefixXML{enc(e.Prefix)})
			last = e.Prefix
			continue
		}
		om := e.Object
		o := s3ObjectXML{Key: enc(om.Key), LastModified: om.LastModified.UTC().Format(s3ISOTime), ETag: om.ETag,
			Size: om.Size, StorageClass: "STANDARD"}
		if om.StorageClass != "" {
			o.StorageClass = om.StorageClass
		}
		if om.ChecksumAlgorithm != "" {
			o.ChecksumAlgorithm, o.ChecksumType = strings.ToUpper(om.ChecksumAlgorithm), om.ChecksumType
		}
		if fetchOwner {
			o.Owner = &s3OwnerXML{ID: om.Owner}
		}
		out.Contents = append(out.Contents, o)
		last = om.Key
	}
	if v2 {
		n := len(entries)
		out.KeyCount = &n
		out.ContinuationToken = token
		out.StartAfter = enc(q.Get("start-after"))
		if truncated {
			out.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(last))
		}
	} else {
		m := enc(q.Get("marker"))
		out.Marker = &m
		if truncated {
			out.NextMarker = enc(last)
		}
	}
	s3WriteXML(req.w, http.StatusOK, out)
	return nil
}
