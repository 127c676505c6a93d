package localaws

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Multipart uploads live under DataDir/uploads/<id>/: upload.json (the object to be, as the create
// request described it) and, per part, part-NNNNN.json naming its data file part-NNNNN.<rand>.data.
// The JSON files are replaced atomically, so an upload survives a restart, and completing one commits
// the object like a PutObject does.

// s3Upload is upload.json.
type s3Upload struct {
	ID        string        `json:"id"`
	Bucket    string        `json:"bucket"`
	Key       string        `json:"key"`
	Initiated time.Time     `json:"initiated"`
	Initiator string        `json:"initiator"`
	Meta      *s3ObjectMeta `json:"meta"`
	// ChecksumAlgorithm (lowercase) is the one the create request named; every part is checked and
	// summed with it. ChecksumType is COMPOSITE or FULL_OBJECT.
	ChecksumAlgorithm string `json:"checksumAlgorithm,omitempty"`
	ChecksumType      string `json:"checksumType,omitempty"`
}

// s3Part is part-NNNNN.json.
type s3Part struct {
	Number       int       `json:"number"`
	Size         int64     `json:"size"`
	MD5          string    `json:"md5"` // hex
	DataFile     string    `json:"dataFile"`
	LastModified time.Time `json:"lastModified"`
	// ChecksumAlgorithm and Checksum (base64) are the part's checksum: of the upload's algorithm, or
	// of the one the client sent with the part when the upload named none.
	ChecksumAlgorithm string `json:"checksumAlgorithm,omitempty"`
	Checksum          string `json:"checksum,omitempty"`
}

const s3MinPartSize = 5 << 20

var s3UploadIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (s *S3Server) uploadDir(id string) string { return filepath.Join(s.st.root, "uploads", id) }

func s3PartJSON(n int) string { return fmt.Sprintf("part-%05d.json", n) }

func (s *S3Server) uploadLock(id string) *sync.Mutex {
	v, _ := s.uploadLocks.LoadOrStore(id, &sync.Mutex{})
	return v.(*sync.Mutex)
}

func s3ErrNoSuchUpload() *Error {
	return &Error{Code: "NoSuchUpload", Status: http.StatusNotFound,
		Message: "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."}
}

// loadUpload reads the upload the request names, which must be into the request's bucket and key.
func (s *S3Server) loadUpload(req *s3Req) (*s3Upload, error) {
	id := req.q.Get("uploadId")
	if !s3UploadIDRE.MatchString(id) {
		return nil, s3ErrNoSuchUpload()
	}
	var u s3Upload
	if err := s3ReadJSON(filepath.Join(s.uploadDir(id), "upload.json"), &u); err != nil || u.Bucket != req.bucket || u.Key != req.key || u.Meta == nil {
		return nil, s3ErrNoSuchUpload()
	}
	u.ID = id
	return &u, nil
}

// uploads returns every upload in progress.
func (s *S3Server) uploads() []*s3Upload {
	entries, _ := os.ReadDir(filepath.Join(s.st.root, "uploads"))
	var out []*s3Upload
	for _, e := range entries {
		if !s3UploadIDRE.MatchString(e.Name()) {
			continue
		}
		var u s3Upload
		if s3ReadJSON(filepath.Join(s.uploadDir(e.Name()), "upload.json"), &u) == nil && u.Meta != nil {
			u.ID = e.Name()
			out = append(out, &u)
		}
	}
	return out
}

// parts returns an upload's parts by number.
func (s *S3Server) parts(id string) map[int]s3Part {
	entries, _ := os.ReadDir(s.uploadDir(id))
	out := map[int]s3Part{}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "part-") || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var p s3Part
		if s3ReadJSON(filepath.Join(s.uploadDir(id), e.Name()), &p) == nil && e.Name() == s3PartJSON(p.Number) {
			out[p.Number] = p
		}
	}
	return out
}

func (s *S3Server) createUpload(req *s3Req) error {
	_, _, err := s.writeAccess(req)
	if err != nil {
		return err
	}
	om, err := s.objectMetaFromHeaders(req)
	if err != nil {
		return err
	}
	u := &s3Upload{ID: s3RandHex(16), Bucket: req.bucket, Key: req.key, Initiated: s.cfg.Now().UTC(),
		Initiator: req.id.PrincipalARN, Meta: om}
	if a := strings.ToLower(req.r.Header.Get("X-Amz-Checksum-Algorithm")); a != "" {
		if _, ok := s3ChecksumAlgByName(a); !ok {
			return &Error{Code: "InvalidRequest", Status: 400, Message: fmt.Sprintf("Checksum algorithm %q is not supported by this server.", a)}
		}
		u.ChecksumAlgorithm = a
	}
	crc := u.ChecksumAlgorithm == "" || strings.HasPrefix(u.ChecksumAlgorithm, "crc")
	switch t := strings.ToUpper(req.r.Header.Get("X-Amz-Checksum-Type")); {
	case t == "FULL_OBJECT" && !crc:
		return &Error{Code: "InvalidRequest", Status: 400, Message: "The FULL_OBJECT checksum type is only supported with CRC32, CRC32C and CRC64NVME."}
	case t == "COMPOSITE" && u.ChecksumAlgorithm == "crc64nvme":
		return &Error{Code: "InvalidRequest", Status: 400, Message: "The COMPOSITE checksum type is not supported with CRC64NVME."}
	case t == "FULL_OBJECT" || t == "COMPOSITE":
		u.ChecksumType = t
	case t != "":
		return s3ErrInvalidArgument("x-amz-checksum-type must be COMPOSITE or FULL_OBJECT")
	case u.ChecksumAlgorithm == "" || u.ChecksumAlgorithm == "crc64nvme":
		u.ChecksumType = "FULL_OBJECT"
	default:
		u.ChecksumType = "COMPOSITE"
	}
	if err := os.MkdirAll(s.uploadDir(u.ID), 0o700); err != nil {
		return err
	}
	if err := s3WriteJSONAtomic(s.st.tmpDir(), filepath.Join(s.uploadDir(u.ID), "upload.json"), u); err != nil {
		_ = os.RemoveAll(s.uploadDir(u.ID))
		return err
	}
	h := req.w.Header()
	s3SetSSEHeaders(h, om)
	if u.ChecksumAlgorithm != "" {
		h.Set("X-Amz-Checksum-Algorithm", strings.ToUpper(u.ChecksumAlgorithm))
		h.Set("X-Amz-Checksum-Type", u.ChecksumType)
	}
	s3WriteXML(req.w, http.StatusOK, struct {
		XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
		Xmlns    string   `xml:"xmlns,attr"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		UploadID string   `xml:"UploadId"`
	}{Xmlns: s3XMLNS, Bucket: req.bucket, Key: req.key, UploadID: u.ID})
	return nil
}

func (s *S3Server) uploadPart(req *s3Req) error {
	if _, _, err := s.objectAccess(req, "s3:PutObject"); err != nil {
		return err
	}
	u, err := s.loadUpload(req)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(req.q.Get("partNumber"))
	if err != nil || n < 1 || n > 10000 {
		return s3ErrInvalidArgument("Part number must be an integer between 1 and 10000, inclusive")
	}
	tmp, body, err := s.receiveToTemp(req, s3BodyOpts{checksumHeaders: true, requireAlg: u.ChecksumAlgorithm, maxSize: s3MaxPutSize,
		tooLarge: &Error{Code: "EntityTooLarge", Status: 400, Message: "Your proposed upload exceeds the maximum allowed part size (5 GB)."}})
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	p := s3Part{Number: n, Size: body.size, MD5: hex.EncodeToString(body.md5), LastModified: s.cfg.Now().UTC(),
		DataFile: fmt.Sprintf("part-%05d.%s.data", n, s3RandHex(8))}
	if body.alg != "" && (u.ChecksumAlgorithm != "" || body.supplied) {
		p.ChecksumAlgorithm, p.Checksum = body.alg, body.checksumB64()
	}

	mu := s.uploadLock(u.ID)
	mu.Lock()
	dir := s.uploadDir(u.ID)
	if _, err := os.Stat(filepath.Join(dir, "upload.json")); err != nil {
		mu.Unlock()
		return s3ErrNoSuchUpload() // completed or aborted meanwhile
	}
	var old s3Part
	hadOld := s3ReadJSON(filepath.Join(dir, s3PartJSON(n)), &old) == nil
	if err := os.Rename(tmp, filepath.Join(dir, p.DataFile)); err != nil {
		mu.Unlock()
		return fmt.Errorf("store part: %w", err)
	}
	if err := s3WriteJSONAtomic(s.st.tmpDir(), filepath.Join(dir, s3PartJSON(n)), p); err != nil {
		_ = os.Remove(filepath.Join(dir, p.DataFile))
		mu.Unlock()
		return err
	}
	mu.Unlock()
	if hadOld && old.DataFile != p.DataFile && s3SafePartFile(old.DataFile) {
		_ = os.Remove(filepath.Join(dir, old.DataFile))
	}

	h := req.w.Header()
	h.Set("ETag", `"`+p.MD5+`"`)
	s3SetSSEHeaders(h, u.Meta)
	if p.Checksum != "" {
		h.Set("X-Amz-Checksum-"+p.ChecksumAlgorithm, p.Checksum)
	}
	req.w.WriteHeader(http.StatusOK)
	return nil
}

func s3SafePartFile(name string) bool {
	return strings.HasPrefix(name, "part-") && strings.HasSuffix(name, ".data") && !strings.ContainsAny(name, `/\`) && name != "." && name != ".."
}

func (s *S3Server) completeUpload(req *s3Req) error {
	_, bs, err := s.objectAccess(req, "s3:PutObject")
	if err != nil {
		return err
	}
	u, err := s.loadUpload(req)
	if err != nil {
		return err
	}
	cond, err := s3WriteCondFrom(req.r.Header)
	if err != nil {
		return err
	}
	cur, _ := bs.get(req.key)
	if err := cond.check(cur, req.key); err != nil {
		return err
	}
	body, err := s.readSmallBody(req, 8<<20, false)
	if err != nil {
		return err
	}
	var in struct {
		Parts []struct {
			PartNumber int    `xml:"PartNumber"`
			ETag       string `xml:"ETag"`
			s3ChecksumFields
		} `xml:"Part"`
	}
	if err := xml.Unmarshal(body, &in); err != nil {
		return s3ErrMalformedXML(err.Error())
	}
	if len(in.Parts) == 0 {
		return s3ErrMalformedXML("CompleteMultipartUpload names no parts")
	}

	mu := s.uploadLock(u.ID)
	mu.Lock()
	defer mu.Unlock()
	dir := s.uploadDir(u.ID)
	if _, err := os.Stat(filepath.Join(dir, "upload.json")); err != nil {
		return s3ErrNoSuchUpload()
	}
	have := s.parts(u.ID)
	var (
		chosen []s3Part
		prev   int
	)
	if len(in.Parts) > 10000 {
		return s3ErrMalformedXML("a multipart upload has at most 10000 parts")
	}
	for _, ip := range in.Parts {
		if ip.PartNumber <= prev {
			return &Error{Code: "InvalidPartOrder", Status: 400, Message: "The list of parts was not in ascending order. Parts must be ordered by part number."}
		}
		prev = ip.PartNumber
	}
	for i, ip := range in.Parts {
		p, ok := have[ip.PartNumber]
		if !ok || strings.Trim(strings.TrimSpace(ip.ETag), `"`) != p.MD5 {
			return &Error{Code: "InvalidPart", Status: 400,
				Message: fmt.Sprintf("One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag (part %d).", ip.PartNumber)}
		}
		if alg, v := ip.get(); v != "" {
			if u.ChecksumAlgorithm != "" && alg != u.ChecksumAlgorithm {
				return &Error{Code: "InvalidPart", Status: 400, Message: fmt.Sprintf("Part %d names a %s checksum; this upload uses %s.", ip.PartNumber, strings.ToUpper(alg), strings.ToUpper(u.ChecksumAlgorithm))}
			}
			if alg == p.ChecksumAlgorithm && v != p.Checksum {
				return &Error{Code: "InvalidPart", Status: 400, Message: fmt.Sprintf("The %s checksum of part %d does not match the uploaded part.", strings.ToUpper(alg), ip.PartNumber)}
			}
		}
		if i < len(in.Parts)-1 && p.Size < s3MinPartSize {
			return &Error{Code: "EntityTooSmall", Status: 400, Message: fmt.Sprintf("Your proposed upload is smaller than the minimum allowed object size: part %d has %d bytes; every part but the last needs at least 5 MiB.", ip.PartNumber, p.Size)}
		}
		chosen = append(chosen, p)
	}

	// Concatenate the parts into the object's bytes, computing its ETag and checksum.
	alg := u.ChecksumAlgorithm
	if alg == "" {
		alg = s3DefaultChecksum
	}
	sumAlg, _ := s3ChecksumAlgByName(alg)
	full := sumAlg.newHash()
	composite := sumAlg.newHash()
	etags := md5.New()
	f, err := s.st.tempFile("mpu-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	var size int64
	sizes := make([]int64, 0, len(chosen))
	buf := make([]byte, 256<<10)
	for _, p := range chosen {
		if !s3SafePartFile(p.DataFile) {
			f.Close()
			return fmt.Errorf("upload %s: part %d names an invalid file", u.ID, p.Number)
		}
		src, err := os.Open(filepath.Join(dir, p.DataFile))
		if err != nil {
			f.Close()
			return fmt.Errorf("upload %s: open part %d: %w", u.ID, p.Number, err)
		}
		n, err := io.CopyBuffer(io.MultiWriter(f, full), src, buf)
		src.Close()
		if err == nil && n != p.Size {
			err = fmt.Errorf("part %d has %d bytes on disk, %d recorded", p.Number, n, p.Size)
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("upload %s: %w", u.ID, err)
		}
		size += n
		sizes = append(sizes, n)
		raw, _ := hex.DecodeString(p.MD5)
		etags.Write(raw)
		if u.ChecksumType == "COMPOSITE" {
			rawSum, err := base64.StdEncoding.DecodeString(p.Checksum)
			if err != nil || p.Checksum == "" || p.ChecksumAlgorithm != alg {
				f.Close()
				return &Error{Code: "InvalidPart", Status: 400, Message: fmt.Sprintf("Part %d was uploaded without its %s checksum.", p.Number, strings.ToUpper(alg))}
			}
			composite.Write(rawSum)
		}
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if v := req.r.Header.Get("X-Amz-Mp-Object-Size"); v != "" {
		if want, err := strconv.ParseInt(v, 10, 64); err != nil || want != size {
			return &Error{Code: "InvalidRequest", Status: 400, Message: fmt.Sprintf("The parts add up to %d bytes, not the %s of x-amz-mp-object-size.", size, v)}
		}
	}

	om := *u.Meta
	om.Key, om.Size, om.PartSizes, om.LastModified = u.Key, size, sizes, s.cfg.Now().UTC()
	om.ETag = fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(etags.Sum(nil)), len(chosen))
	om.ChecksumAlgorithm, om.ChecksumType = alg, u.ChecksumType
	if u.ChecksumType == "COMPOSITE" {
		om.Checksum = fmt.Sprintf("%s-%d", base64.StdEncoding.EncodeToString(composite.Sum(nil)), len(chosen))
	} else {
		om.Checksum = base64.StdEncoding.EncodeToString(full.Sum(nil))
	}
	// A checksum of the whole object the client computed must match.
	for _, a := range s3ChecksumAlgs {
		want := req.r.Header.Get("X-Amz-Checksum-" + a.name)
		if want == "" {
			continue
		}
		if a.name != alg || (want != om.Checksum && want != strings.SplitN(om.Checksum, "-", 2)[0]) {
			return &Error{Code: "BadDigest", Status: 400, Message: fmt.Sprintf("The %s you specified did not match the calculated checksum.", strings.ToUpper(a.name))}
		}
	}
	if err := s.st.commit(bs, f.Name(), &om, cond); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("s3: could not remove a completed upload's parts", "upload", u.ID, "error", err)
	}
	s.uploadLocks.Delete(u.ID)

	s3SetSSEHeaders(req.w.Header(), &om)
	s3WriteXML(req.w, http.StatusOK, struct {
		XMLName      xml.Name `xml:"CompleteMultipartUploadResult"`
		Xmlns        string   `xml:"xmlns,attr"`
		Location     string   `xml:"Location"`
		Bucket       string   `xml:"Bucket"`
		Key          string   `xml:"Key"`
		ETag         string   `xml:"ETag"`
		ChecksumType string   `xml:"ChecksumType,omitempty"`
		s3ChecksumFields
	}{Xmlns: s3XMLNS, Location: "/" + req.bucket + "/" + req.key, Bucket: req.bucket, Key: req.key, ETag: om.ETag,
		ChecksumType: om.ChecksumType, s3ChecksumFields: s3ChecksumXML(om.ChecksumAlgorithm, om.Checksum)})
	return nil
}

func (s *S3Server) abortUpload(req *s3Req) error {
	if _, _, err := s.objectAccess(req, "s3:AbortMultipartUpload"); err != nil {
		return err
	}
	u, err := s.loadUpload(req)
	if err != nil {
		return err
	}
	mu := s.uploadLock(u.ID)
	mu.Lock()
	err = os.RemoveAll(s.uploadDir(u.ID))
	mu.Unlock()
	if err != nil {
		return err
	}
	s.uploadLocks.Delete(u.ID)
	req.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *S3Server) listParts(req *s3Req) error {
	if _, _, err := s.objectAccess(req, "s3:ListMultipartUploadParts"); err != nil {
		return err
	}
	u, err := s.loadUpload(req)
	if err != nil {
		return err
	}
	maxParts := 1000
	if v := req.q.Get("max-parts"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return s3ErrInvalidArgument("max-parts must be a non-negative integer")
		}
		maxParts = min(n, 1000)
	}
	marker := 0
	if v := req.q.Get("part-number-marker"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return s3ErrInvalidArgument("part-number-marker must be a non-negative integer")
		}
		marker = n
	}
	all := s.parts(u.ID)
	nums := make([]int, 0, len(all))
	for n := range all {
		if n > marker {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	type partXML struct {
		PartNumber   int    `xml:"PartNumber"`
		LastModified string `xml:"LastModified"`
		ETag         string `xml:"ETag"`
		Size         int64  `xml:"Size"`
		s3ChecksumFields
	}
	out := struct {
		XMLName              xml.Name   `xml:"ListPartsResult"`
		Xmlns                string     `xml:"xmlns,attr"`
		Bucket               string     `xml:"Bucket"`
		Key                  string     `xml:"Key"`
		UploadID             string     `xml:"UploadId"`
		Initiator            s3OwnerXML `xml:"Initiator"`
		Owner                s3OwnerXML `xml:"Owner"`
		StorageClass         string     `xml:"StorageClass"`
		PartNumberMarker     int        `xml:"PartNumberMarker"`
		NextPartNumberMarker int        `xml:"NextPartNumberMarker"`
		MaxParts             int        `xml:"MaxParts"`
		IsTruncated          bool       `xml:"IsTruncated"`
		ChecksumAlgorithm    string     `xml:"ChecksumAlgorithm,omitempty"`
		ChecksumType         string     `xml:"ChecksumType,omitempty"`
		Parts                []partXML  `xml:"Part"`
	}{Xmlns: s3XMLNS, Bucket: u.Bucket, Key: u.Key, UploadID: u.ID, Initiator: s3OwnerXML{ID: u.Initiator},
		Owner: s3OwnerXML{ID: u.Meta.Owner}, StorageClass: "STANDARD", PartNumberMarker: marker, MaxParts: maxParts,
		ChecksumAlgorithm: strings.ToUpper(u.ChecksumAlgorithm), ChecksumType: u.ChecksumType}
	if len(nums) > maxParts {
		nums, out.IsTruncated = nums[:maxParts], true
	}
	for _, n := range nums {
		p := all[n]
		out.Parts = append(out.Parts, partXML{PartNumber: n, LastModified: p.LastModified.Format(s3ISOTime),
			ETag: `"` + p.MD5 + `"`, Size: p.Size, s3ChecksumFields: s3ChecksumXML(p.ChecksumAlgorithm, p.Checksum)})
		out.NextPartNumberMarker = n
	}
	s3WriteXML(req.w, http.StatusOK, out)
	return nil
}

func (s *S3Server) listUploads(req *s3Req) error {
	b, _, err := s.bucketFor(req, req.bucket, false)
	if err != nil {
		return err
	}
	if err := s.authorize(req, &b, "s3:ListBucketMultipartUploads", s3BucketARN(req.bucket)); err != nil {
		return err
	}
	prefix := req.q.Get("prefix")
	keyMarker, idMarker := req.q.Get("key-marker"), req.q.Get("upload-id-marker")
	maxUploads := 1000
	if v := req.q.Get("max-uploads"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return s3ErrInvalidArgument("max-uploads must be a non-negative integer")
		}
		maxUploads = min(n, 1000)
	}
	var ups []*s3Upload
	for _, u := range s.uploads() {
		if u.Bucket != req.bucket || !strings.HasPrefix(u.Key, prefix) {
			continue
		}
		if keyMarker != "" && (u.Key < keyMarker || (u.Key == keyMarker && (idMarker == "" || u.ID <= idMarker))) {
			continue
		}
		ups = append(ups, u)
	}
	sort.Slice(ups, func(i, j int) bool {
		if ups[i].Key != ups[j].Key {
			return ups[i].Key < ups[j].Key
		}
		return ups[i].Initiated.Before(ups[j].Initiated)
	})
	type uploadXML struct {
		Key          string     `xml:"Key"`
		UploadID     string     `xml:"UploadId"`
		Initiator    s3OwnerXML `xml:"Initiator"`
		Owner        s3OwnerXML `xml:"Owner"`
		StorageClass string     `xml:"StorageClass"`
		Initiated    string     `xml:"Initiated"`
	}
	out := struct {
		XMLName            xml.Name    `xml:"ListMultipartUploadsResult"`
		Xmlns              string      `xml:"xmlns,attr"`
		Bucket             string      `xml:"Bucket"`
		KeyMarker          string      `xml:"KeyMarker"`
		UploadIDMarker     string      `xml:"UploadIdMarker"`
		NextKeyMarker      string      `xml:"NextKeyMarker,omitempty"`
		NextUploadIDMarker string      `xml:"NextUploadIdMarker,omitempty"`
		Prefix             string      `xml:"Prefix"`
		MaxUploads         int         `xml:"MaxUploads"`
		IsTruncated        bool        `xml:"IsTruncated"`
		Uploads            []uploadXML `xml:"Upload"`
	}{Xmlns: s3XMLNS, Bucket: req.bucket, KeyMarker: keyMarker, UploadIDMarker: idMarker, Prefix: prefix, MaxUploads: maxUploads}
	if len(ups) > maxUploads {
		ups, out.IsTruncated = ups[:maxUploads], true
	}
	for _, u := range ups {
		out.Uploads = append(out.Uploads, uploadXML{Key: u.Key, UploadID: u.ID, Initiator: s3OwnerXML{ID: u.Initiator},
			Owner: s3OwnerXML{ID: u.Meta.Owner}, StorageClass: "STANDARD", Initiated: u.Initiated.Format(s3ISOTime)})
		out.NextKeyMarker, out.NextUploadIDMarker = u.Key, u.ID
	}
	if !out.IsTruncated {
		out.NextKeyMarker, out.NextUploadIDMarker = "", ""
	}
	s3WriteXML(req.w, http.StatusOK, out)
	return nil
}
