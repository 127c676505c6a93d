package localaws

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// upload is a multipart upload in progress, kept under DataDir/uploads/<id>/.
type upload struct {
	Bucket string      `json:"bucket"`
	Key    string      `json:"key"`
	Meta   *objectMeta `json:"meta"`
}

type partMeta struct {
	Number    int               `json:"number"`
	Size      int64             `json:"size"`
	MD5       string            `json:"md5"`
	Checksums map[string]string `json:"checksums,omitempty"`
}

var uploadIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (s *S3Server) uploadDir(id string) string { return filepath.Join(s.st.root, "uploads", id) }

func (s *S3Server) loadUpload(req *request) (upload, string, error) {
	id := req.q.Get("uploadId")
	var u upload
	if !uploadIDRE.MatchString(id) || readJSON(filepath.Join(s.uploadDir(id), "upload.json"), &u) != nil || u.Bucket != req.bucket || u.Key != req.key {
		return u, "", &Error{Code: "NoSuchUpload", Status: 404, Message: "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."}
	}
	return u, id, nil
}

func (s *S3Server) createUpload(req *request) error {
	if _, err := s.authorize(req, "s3:PutObject", setsACL(req.r.Header)); err != nil {
		return err
	}
	id := randomHex(16)
	if err := os.MkdirAll(s.uploadDir(id), 0o700); err != nil {
		return err
	}
	u := upload{Bucket: req.bucket, Key: req.key, Meta: objectHeaders(req.r.Header, req.key, AccountOf(req.id.PrincipalARN))}
	if err := writeJSON(filepath.Join(s.st.root, "tmp"), filepath.Join(s.uploadDir(id), "upload.json"), u); err != nil {
		return err
	}
	if a := req.r.Header.Get("X-Amz-Checksum-Algorithm"); a != "" {
		req.w.Header().Set("X-Amz-Checksum-Algorithm", a)
	}
	req.w.Header().Set("X-Amz-Server-Side-Encryption", u.Meta.SSE)
	return writeXML(req.w, 200, struct {
		XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
		Xmlns    string   `xml:"xmlns,attr"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		UploadID string   `xml:"UploadId"`
	}{Xmlns: s3NS, Bucket: req.bucket, Key: req.key, UploadID: id})
}

func (s *S3Server) uploadPart(req *request) error {
	if _, err := s.authorize(req, "s3:PutObject", false); err != nil {
		return err
	}
	_, id, err := s.loadUpload(req)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(req.q.Get("partNumber"))
	if err != nil || n < 1 || n > 10000 {
		return &Error{Code: "InvalidArgument", Status: 400, Message: "Part number must be an integer between 1 and 10000, inclusive"}
	}
	tmp, size, md5hex, checksums, err := s.receive(req)
	if err != nil {
		return err
	}
	dir := s.uploadDir(id)
	if err := os.Rename(tmp, filepath.Join(dir, fmt.Sprintf("part-%05d.data", n))); err != nil {
		os.Remove(tmp)
		return err
	}
	pm := partMeta{Number: n, Size: size, MD5: md5hex, Checksums: checksums}
	if err := writeJSON(filepath.Join(s.st.root, "tmp"), filepath.Join(dir, fmt.Sprintf("part-%05d.json", n)), pm); err != nil {
		return err
	}
	req.w.Header().Set("ETag", `"`+md5hex+`"`)
	for a, v := range checksums {
		req.w.Header().Set("X-Amz-Checksum-"+a, v)
	}
	req.w.WriteHeader(200)
	return nil
}

func (s *S3Server) completeUpload(req *request) error {
	if _, err := s.authorize(req, "s3:PutObject", false); err != nil {
		return err
	}
	u, id, err := s.loadUpload(req)
	if err != nil {
		return err
	}
	ifNoneMatch, err := ifNoneMatchStar(req.r.Header)
	if err != nil {
		return err
	}
	var in struct {
		Parts []struct {
			PartNumber int    `xml:"PartNumber"`
			ETag       string `xml:"ETag"`
		} `xml:"Part"`
	}
	body, _ := io.ReadAll(io.LimitReader(req.r.Body, 4<<20))
	if err := xml.Unmarshal(body, &in); err != nil || len(in.Parts) == 0 {
		return &Error{Code: "MalformedXML", Status: 400, Message: "The XML you provided was not well-formed or did not validate against our published schema"}
	}
	dir := s.uploadDir(id)
	f, err := s.st.tempFile()
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	all := md5.New()
	var size int64
	prev := 0
	for i, p := range in.Parts {
		var pm partMeta
		if p.PartNumber <= prev || readJSON(filepath.Join(dir, fmt.Sprintf("part-%05d.json", p.PartNumber)), &pm) != nil || strings.Trim(p.ETag, `"`) != pm.MD5 {
			f.Close()
			return &Error{Code: "InvalidPart", Status: 400, Message: fmt.Sprintf("One or more of the specified parts could not be found (part %d).", p.PartNumber)}
		}
		if i < len(in.Parts)-1 && pm.Size < 5<<20 {
			f.Close()
			return &Error{Code: "EntityTooSmall", Status: 400, Message: "Your proposed upload is smaller than the minimum allowed object size."}
		}
		prev = p.PartNumber
		src, err := os.Open(filepath.Join(dir, fmt.Sprintf("part-%05d.data", p.PartNumber)))
		if err != nil {
			f.Close()
			return err
		}
		n, err := io.Copy(f, src)
		src.Close()
		if err != nil {
			f.Close()
			return err
		}
		size += n
		raw, _ := hex.DecodeString(pm.MD5)
		all.Write(raw)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	om := u.Meta
	om.Size, om.LastModified = size, s.cfg.Now().UTC()
	om.ETag = fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(all.Sum(nil)), len(in.Parts))
	if err := s.st.commit(req.bucket, f.Name(), om, ifNoneMatch); err != nil {
		return err
	}
	os.RemoveAll(dir)
	req.w.Header().Set("X-Amz-Server-Side-Encryption", om.SSE)
	return writeXML(req.w, http.StatusOK, struct {
		XMLName xml.Name `xml:"CompleteMultipartUploadResult"`
		Xmlns   string   `xml:"xmlns,attr"`
		Bucket  string   `xml:"Bucket"`
		Key     string   `xml:"Key"`
		ETag    string   `xml:"ETag"`
	}{Xmlns: s3NS, Bucket: req.bucket, Key: req.key, ETag: om.ETag})
}

func (s *S3Server) abortUpload(req *request) error {
	if _, err := s.authorize(req, "s3:AbortMultipartUpload", false); err != nil {
		return err
	}
	_, id, err := s.loadUpload(req)
	if err != nil {
		return err
	}
	os.RemoveAll(s.uploadDir(id))
	req.w.WriteHeader(204)
	return nil
}
