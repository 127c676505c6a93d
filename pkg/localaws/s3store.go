package localaws

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// objectMeta is what the store keeps about an object besides its bytes.
type objectMeta struct {
	Key                string            `json:"key"`
	DataFile           string            `json:"dataFile"`
	Size               int64             `json:"size"`
	ETag               string            `json:"etag"`
	LastModified       time.Time         `json:"lastModified"`
	ContentType        string            `json:"contentType,omitempty"`
	ContentEncoding    string            `json:"contentEncoding,omitempty"`
	ContentDisposition string            `json:"contentDisposition,omitempty"`
	CacheControl       string            `json:"cacheControl,omitempty"`
	UserMeta           map[string]string `json:"userMeta,omitempty"`
	ACL                string            `json:"acl,omitempty"`
	SSE                string            `json:"sse,omitempty"`
	Checksums          map[string]string `json:"checksums,omitempty"`
	// Owner is the account that wrote the object.
	Owner string `json:"owner"`
}

type bucketMeta struct {
	Name    string    `json:"name"`
	Region  string    `json:"region"`
	Account string    `json:"account"`
	Created time.Time `json:"created"`
	Policy  *Policy   `json:"policy,omitempty"`
}

// store keeps buckets and objects on disk. Every object write goes to a temp file first and becomes
// visible by renames (data, then metadata), so a crash never leaves a torn object. mu guards the index
// and serializes commits, which makes conditional writes race-free.
type store struct {
	root string
	mu   sync.Mutex
	// index holds each bucket's objects by key.
	index map[string]map[string]*objectMeta
	meta  map[string]bucketMeta
}

func openStore(root string) (*store, error) {
	s := &store{root: root, index: map[string]map[string]*objectMeta{}, meta: map[string]bucketMeta{}}
	for _, d := range []string{"buckets", "tmp", "uploads"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, err
		}
	}
	entries, err := os.ReadDir(filepath.Join(root, "buckets"))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		var bm bucketMeta
		if err := readJSON(filepath.Join(root, "buckets", e.Name(), "bucket.json"), &bm); err != nil {
			continue
		}
		objs := map[string]*objectMeta{}
		files, _ := filepath.Glob(filepath.Join(root, "buckets", e.Name(), "objects", "*.json"))
		for _, f := range files {
			var om objectMeta
			if readJSON(f, &om) == nil {
				objs[om.Key] = &om
			}
		}
		s.meta[bm.Name] = bm
		s.index[bm.Name] = objs
	}
	return s, nil
}

func (s *store) bucketDir(b string) string { return filepath.Join(s.root, "buckets", b) }

func keyHash(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

func (s *store) metaPath(bucket, key string) string {
	return filepath.Join(s.bucketDir(bucket), "objects", keyHash(key)+".json")
}

func (s *store) createBucket(bm bucketMeta) (created bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.meta[bm.Name]; ok {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Join(s.bucketDir(bm.Name), "objects"), 0o700); err != nil {
		return false, err
	}
	if err := writeJSON(filepath.Join(s.root, "tmp"), filepath.Join(s.bucketDir(bm.Name), "bucket.json"), bm); err != nil {
		return false, err
	}
	s.meta[bm.Name] = bm
	s.index[bm.Name] = map[string]*objectMeta{}
	return true, nil
}

func (s *store) deleteBucket(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.index[name]) > 0 {
		return &Error{Code: "BucketNotEmpty", Status: 409, Message: "The bucket you tried to delete is not empty"}
	}
	delete(s.meta, name)
	delete(s.index, name)
	return os.RemoveAll(s.bucketDir(name))
}

func (s *store) bucket(name string) (bucketMeta, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bm, ok := s.meta[name]
	return bm, ok
}

func (s *store) buckets() []bucketMeta {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]bucketMeta, 0, len(s.meta))
	for _, bm := range s.meta {
		out = append(out, bm)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *store) get(bucket, key string) (*objectMeta, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	om, ok := s.index[bucket][key]
	return om, ok
}

func (s *store) dataPath(bucket string, om *objectMeta) string {
	return filepath.Join(s.bucketDir(bucket), "objects", om.DataFile)
}

// tempFile returns a new file in the store's temp dir.
func (s *store) tempFile() (*os.File, error) {
	return os.CreateTemp(filepath.Join(s.root, "tmp"), "obj-*")
}

// commit makes the temp file the object's bytes. With ifNoneMatch it fails if the key exists.
func (s *store) commit(bucket string, tmp string, om *objectMeta, ifNoneMatch bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	objs, ok := s.index[bucket]
	if !ok {
		os.Remove(tmp)
		return &Error{Code: "NoSuchBucket", Status: 404, Message: "The specified bucket does not exist"}
	}
	old, exists := objs[om.Key]
	if ifNoneMatch && exists {
		os.Remove(tmp)
		return &Error{Code: "PreconditionFailed", Status: 412, Message: "At least one of the pre-conditions you specified did not hold"}
	}
	om.DataFile = keyHash(om.Key) + "." + randomHex(8) + ".data"
	if err := os.Rename(tmp, filepath.Join(s.bucketDir(bucket), "objects", om.DataFile)); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := writeJSON(filepath.Join(s.root, "tmp"), s.metaPath(bucket, om.Key), om); err != nil {
		return err
	}
	objs[om.Key] = om
	if exists {
		os.Remove(filepath.Join(s.bucketDir(bucket), "objects", old.DataFile))
	}
	return nil
}

func (s *store) remove(bucket, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	om, ok := s.index[bucket][key]
	if !ok {
		return
	}
	os.Remove(s.metaPath(bucket, key))
	os.Remove(filepath.Join(s.bucketDir(bucket), "objects", om.DataFile))
	delete(s.index[bucket], key)
}

// list returns the bucket's keys after `after` with prefix, in order.
func (s *store) list(bucket, prefix, after string) []*objectMeta {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*objectMeta
	for k, om := range s.index[bucket] {
		if strings.HasPrefix(k, prefix) && k > after {
			out = append(out, om)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// writeJSON writes v to path atomically (temp file in tmpDir, fsync, rename).
func writeJSON(tmpDir, path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(tmpDir, "meta-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("store metadata: %w", err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
