package localaws

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// On-disk layout under S3Config.DataDir:
//
//	buckets/<name>/bucket.json                 the bucket: region, owner account, creation time
//	buckets/<name>/objects/<h>.json            an object's metadata, h = hex SHA-256 of its key
//	buckets/<name>/objects/<h>.<rand>.data     its bytes (the metadata names the file)
//	uploads/<id>/upload.json, part-NNNNN.json  multipart uploads in progress, and their part files
//	tmp/                                       files being written; emptied on start
//
// Keys never become paths: any key (slashes, "..", unicode) maps to a fixed-length hex name, so no key
// can escape its bucket's directory. Bucket names are checked against S3's rules before they are used
// as a directory name, and upload IDs are 32 hex digits.
//
// Crash safety: an object's bytes are written to tmp/, fsynced, and renamed to a fresh data file; then
// its metadata (written the same way) is renamed over <h>.json, which is the commit point; then the
// directory is fsynced and the previous data file removed. A crash at any moment leaves either the old
// object or the new one, plus at worst an unreferenced data file, which the next start removes.

// s3BucketNameRE is S3's rule for bucket names (3–63 lowercase letters, digits, dots and hyphens).
var s3BucketNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func s3ValidBucketName(name string) bool {
	return s3BucketNameRE.MatchString(name) && !strings.Contains(name, "..") && name != "." && name != ".."
}

// s3BucketMeta is bucket.json.
type s3BucketMeta struct {
	Name    string    `json:"name"`
	Region  string    `json:"region"`
	Account string    `json:"account"`
	Created time.Time `json:"created"`
}

// s3Grant is one ACL grant: a grantee (canonical user ID, group URI or e-mail) and a permission.
type s3Grant struct {
	ID         string `json:"id,omitempty"`
	URI        string `json:"uri,omitempty"`
	Email      string `json:"email,omitempty"`
	Permission string `json:"permission"`
}

// s3ObjectMeta is what the store keeps about an object besides its bytes. Values in the index are never
// modified once published: an update replaces the pointer, so readers may hold one without a lock.
type s3ObjectMeta struct {
	Key                string            `json:"key"`
	DataFile           string            `json:"dataFile"`
	Size               int64             `json:"size"`
	ETag               string            `json:"etag"` // quoted, as sent on the wire
	LastModified       time.Time         `json:"lastModified"`
	ContentType        string            `json:"contentType,omitempty"`
	ContentEncoding    string            `json:"contentEncoding,omitempty"`
	ContentDisposition string            `json:"contentDisposition,omitempty"`
	ContentLanguage    string            `json:"contentLanguage,omitempty"`
	CacheControl       string            `json:"cacheControl,omitempty"`
	Expires            string            `json:"expires,omitempty"`
	UserMeta           map[string]string `json:"userMeta,omitempty"`
	StorageClass       string            `json:"storageClass,omitempty"`
	SSE                string            `json:"sse,omitempty"`
	SSEKMSKeyID        string            `json:"sseKmsKeyId,omitempty"`
	// ACL is the canned ACL the object was written with ("private" when none was sent, "" when explicit
	// grants were sent instead; see Grants).
	ACL    string    `json:"acl,omitempty"`
	Grants []s3Grant `json:"grants,omitempty"`
	// Owner is the account that wrote the object.
	Owner string `json:"owner"`
	// ChecksumAlgorithm (lowercase: crc32, crc32c, crc64nvme, sha1, sha256) and Checksum (base64, with
	// "-N" for a composite multipart checksum) are the object's additional checksum.
	ChecksumAlgorithm string `json:"checksumAlgorithm,omitempty"`
	Checksum          string `json:"checksum,omitempty"`
	ChecksumType      string `json:"checksumType,omitempty"` // FULL_OBJECT or COMPOSITE
	// PartSizes are the part sizes of an object written by a multipart upload.
	PartSizes []int64 `json:"partSizes,omitempty"`
}

// s3BucketState is a bucket's in-memory index: its objects by key and the keys in order.
type s3BucketState struct {
	mu      sync.RWMutex
	meta    s3BucketMeta
	deleted bool
	objs    map[string]*s3ObjectMeta
	keys    []string // sorted
}

// s3Store keeps buckets and objects on disk, with an in-memory index rebuilt on start.
type s3Store struct {
	root string
	log  *slog.Logger

	mu      sync.RWMutex
	buckets map[string]*s3BucketState
}

func s3OpenStore(root string, log *slog.Logger) (*s3Store, error) {
	st := &s3Store{root: root, log: log, buckets: map[string]*s3BucketState{}}
	for _, d := range []string{"buckets", "uploads", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", filepath.Join(root, d), err)
		}
	}
	// Whatever is in tmp/ was being written when the process stopped.
	if entries, err := os.ReadDir(st.tmpDir()); err == nil {
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(st.tmpDir(), e.Name()))
		}
	}
	entries, err := os.ReadDir(filepath.Join(root, "buckets"))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(root, "buckets"), err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		bs, err := st.loadBucket(e.Name())
		if err != nil {
			log.Warn("s3: skipping bucket directory", "dir", filepath.Join(root, "buckets", e.Name()), "error", err)
			continue
		}
		st.buckets[bs.meta.Name] = bs
	}
	return st, nil
}

// loadBucket reads a bucket's metadata and objects, removing data files no metadata refers to.
func (st *s3Store) loadBucket(name string) (*s3BucketState, error) {
	var bm s3BucketMeta
	if err := s3ReadJSON(filepath.Join(st.bucketDir(name), "bucket.json"), &bm); err != nil {
		return nil, err
	}
	if bm.Name != name || !s3ValidBucketName(name) {
		return nil, fmt.Errorf("bucket.json names %q, not %q", bm.Name, name)
	}
	bs := &s3BucketState{meta: bm, objs: map[string]*s3ObjectMeta{}}
	dir := st.objectsDir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	present := map[string]bool{}
	for _, e := range entries {
		present[e.Name()] = true
	}
	referenced := map[string]bool{}
	for _, e := range entries {
		n := e.Name()
		if !strings.HasSuffix(n, ".json") {
			continue
		}
		var om s3ObjectMeta
		if err := s3ReadJSON(filepath.Join(dir, n), &om); err != nil {
			st.log.Warn("s3: unreadable object metadata ignored", "file", filepath.Join(dir, n), "error", err)
			continue
		}
		h := s3KeyHash(om.Key)
		if n != h+".json" || !strings.HasPrefix(om.DataFile, h+".") || !strings.HasSuffix(om.DataFile, ".data") || strings.ContainsAny(om.DataFile, `/\`) {
			st.log.Warn("s3: inconsistent object metadata ignored", "file", filepath.Join(dir, n))
			continue
		}
		if !present[om.DataFile] {
			st.log.Warn("s3: object metadata without data ignored", "bucket", name, "key", om.Key)
			continue
		}
		referenced[om.DataFile] = true
		bs.objs[om.Key] = &om
		bs.keys = append(bs.keys, om.Key)
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".data") && !referenced[n] {
			_ = os.Remove(filepath.Join(dir, n)) // written or replaced when the process stopped
		}
	}
	sort.Strings(bs.keys)
	return bs, nil
}

func (st *s3Store) tmpDir() string               { return filepath.Join(st.root, "tmp") }
func (st *s3Store) bucketDir(name string) string { return filepath.Join(st.root, "buckets", name) }
func (st *s3Store) objectsDir(name string) string {
	return filepath.Join(st.root, "buckets", name, "objects")
}

func (st *s3Store) dataPath(bucket string, om *s3ObjectMeta) string {
	return filepath.Join(st.objectsDir(bucket), om.DataFile)
}

// tempFile creates a file in tmp/; rename it into place once complete.
func (st *s3Store) tempFile(pattern string) (*os.File, error) {
	return os.CreateTemp(st.tmpDir(), pattern)
}

func (st *s3Store) bucket(name string) (*s3BucketState, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	bs, ok := st.buckets[name]
	return bs, ok
}

func (st *s3Store) bucketMetas() []s3BucketMeta {
	st.mu.RLock()
	defer st.mu.RUnlock()
	out := make([]s3BucketMeta, 0, len(st.buckets))
	for _, bs := range st.buckets {
		out = append(out, bs.meta)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ensureBucket creates a bucket, or updates the region and account of an existing one when given.
// It reports whether the bucket was created.
func (st *s3Store) ensureBucket(bm s3BucketMeta) (s3BucketMeta, bool, error) {
	if !s3ValidBucketName(bm.Name) {
		return bm, false, fmt.Errorf("invalid bucket name %q: use 3-63 lowercase letters, digits, dots and hyphens", bm.Name)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if bs, ok := st.buckets[bm.Name]; ok {
		bs.mu.Lock()
		defer bs.mu.Unlock()
		cur := bs.meta
		upd := cur
		if bm.Region != "" {
			upd.Region = bm.Region
		}
		if bm.Account != "" {
			upd.Account = bm.Account
		}
		if upd != cur {
			if err := s3WriteJSONAtomic(st.tmpDir(), filepath.Join(st.bucketDir(bm.Name), "bucket.json"), upd); err != nil {
				return cur, false, err
			}
			bs.meta = upd
		}
		return upd, false, nil
	}
	if err := os.MkdirAll(st.objectsDir(bm.Name), 0o700); err != nil {
		return bm, false, err
	}
	if err := s3WriteJSONAtomic(st.tmpDir(), filepath.Join(st.bucketDir(bm.Name), "bucket.json"), bm); err != nil {
		return bm, false, err
	}
	s3SyncDir(filepath.Join(st.root, "buckets"))
	st.buckets[bm.Name] = &s3BucketState{meta: bm, objs: map[string]*s3ObjectMeta{}}
	return bm, true, nil
}

// deleteBucket removes an empty bucket.
func (st *s3Store) deleteBucket(name string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	bs, ok := st.buckets[name]
	if !ok {
		return s3ErrNoSuchBucket(name)
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if len(bs.objs) > 0 {
		return &Error{Code: "BucketNotEmpty", Status: 409, Message: "The bucket you tried to delete is not empty"}
	}
	// Removing bucket.json is the commit point: a directory without it is not loaded again.
	if err := os.Remove(filepath.Join(st.bucketDir(name), "bucket.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	bs.deleted = true
	delete(st.buckets, name)
	if err := os.RemoveAll(st.bucketDir(name)); err != nil {
		st.log.Warn("s3: could not remove the deleted bucket's directory", "bucket", name, "error", err)
	}
	return nil
}

// get returns an object's metadata.
func (bs *s3BucketState) get(key string) (*s3ObjectMeta, bool) {
	bs.mu.RLock()
	defer bs.mu.RUnlock()
	om, ok := bs.objs[key]
	return om, ok
}

// open returns an object's metadata and its open data file; an overwrite after this does not affect
// the file returned.
func (st *s3Store) open(bs *s3BucketState, key string) (*s3ObjectMeta, *os.File, error) {
	bs.mu.RLock()
	defer bs.mu.RUnlock()
	om, ok := bs.objs[key]
	if !ok || bs.deleted {
		return nil, nil, nil
	}
	f, err := os.Open(st.dataPath(bs.meta.Name, om))
	if err != nil {
		return nil, nil, fmt.Errorf("open data of %s/%s: %w", bs.meta.Name, key, err)
	}
	return om, f, nil
}

// s3WriteCond is a conditional write: If-None-Match: * and/or If-Match: <etag>.
type s3WriteCond struct {
	IfNoneMatchStar bool
	IfMatch         string // an ETag list or "*"; empty for none
}

// check runs the condition against the current object (nil when there is none).
func (c s3WriteCond) check(cur *s3ObjectMeta, key string) error {
	if c.IfNoneMatchStar && cur != nil {
		return s3ErrPrecondition("If-None-Match")
	}
	if c.IfMatch != "" {
		if cur == nil {
			return s3ErrNoSuchKey(key)
		}
		if !s3ETagListMatches(c.IfMatch, cur.ETag) {
			return s3ErrPrecondition("If-Match")
		}
	}
	return nil
}

// commit makes tmpData (a complete, fsynced file in tmp/) the bytes of om.Key, checking cond under the
// bucket's lock, so of concurrent conditional writes exactly one wins. It removes tmpData in any case.
func (st *s3Store) commit(bs *s3BucketState, tmpData string, om *s3ObjectMeta, cond s3WriteCond) error {
	defer os.Remove(tmpData) // a no-op once renamed
	bucket := bs.meta.Name
	h := s3KeyHash(om.Key)
	om.DataFile = h + "." + s3RandHex(8) + ".data"
	metaTmp, err := s3WriteTemp(st.tmpDir(), om)
	if err != nil {
		return err
	}
	defer os.Remove(metaTmp)

	bs.mu.Lock()
	if bs.deleted {
		bs.mu.Unlock()
		return s3ErrNoSuchBucket(bucket)
	}
	old := bs.objs[om.Key]
	if err := cond.check(old, om.Key); err != nil {
		bs.mu.Unlock()
		return err
	}
	dir := st.objectsDir(bucket)
	if err := os.Rename(tmpData, filepath.Join(dir, om.DataFile)); err != nil {
		bs.mu.Unlock()
		return fmt.Errorf("store object bytes: %w", err)
	}
	if err := os.Rename(metaTmp, filepath.Join(dir, h+".json")); err != nil {
		_ = os.Remove(filepath.Join(dir, om.DataFile))
		bs.mu.Unlock()
		return fmt.Errorf("store object metadata: %w", err)
	}
	bs.objs[om.Key] = om
	if old == nil {
		i, _ := slices.BinarySearch(bs.keys, om.Key)
		bs.keys = slices.Insert(bs.keys, i, om.Key)
	}
	bs.mu.Unlock()

	s3SyncDir(dir)
	if old != nil {
		_ = os.Remove(filepath.Join(dir, old.DataFile))
	}
	return nil
}

// replaceMeta rewrites an existing object's metadata (same bytes), e.g. for PutObjectAcl.
func (st *s3Store) replaceMeta(bs *s3BucketState, key string, update func(om s3ObjectMeta) (s3ObjectMeta, error)) error {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	cur, ok := bs.objs[key]
	if !ok || bs.deleted {
		return s3ErrNoSuchKey(key)
	}
	upd, err := update(*cur)
	if err != nil {
		return err
	}
	upd.Key, upd.DataFile = cur.Key, cur.DataFile
	dir := st.objectsDir(bs.meta.Name)
	if err := s3WriteJSONAtomic(st.tmpDir(), filepath.Join(dir, s3KeyHash(key)+".json"), &upd); err != nil {
		return err
	}
	bs.objs[key] = &upd
	return nil
}

// remove deletes an object; a missing key is not an error (S3 answers 204 either way).
func (st *s3Store) remove(bs *s3BucketState, key string) error {
	bs.mu.Lock()
	om, ok := bs.objs[key]
	if !ok || bs.deleted {
		bs.mu.Unlock()
		return nil
	}
	dir := st.objectsDir(bs.meta.Name)
	if err := os.Remove(filepath.Join(dir, s3KeyHash(key)+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		bs.mu.Unlock()
		return fmt.Errorf("delete object metadata: %w", err)
	}
	delete(bs.objs, key)
	if i, found := slices.BinarySearch(bs.keys, key); found {
		bs.keys = slices.Delete(bs.keys, i, i+1)
	}
	bs.mu.Unlock()
	s3SyncDir(dir)
	_ = os.Remove(filepath.Join(dir, om.DataFile))
	return nil
}

// s3ListEntry is one line of a listing: an object, or a common prefix (Object nil).
type s3ListEntry struct {
	Object *s3ObjectMeta
	Prefix string
}

// list returns up to limit entries (objects and common prefixes) in key order, starting after `after`
// (a key or a common prefix previously returned), and whether more remain.
func (bs *s3BucketState) list(prefix, delimiter, after string, limit int) ([]s3ListEntry, bool) {
	bs.mu.RLock()
	defer bs.mu.RUnlock()
	var out []s3ListEntry
	keys := bs.keys
	i := sort.SearchStrings(keys, prefix)
	if after != "" {
		j := sort.Search(len(keys), func(n int) bool { return keys[n] > after })
		i = max(i, j)
	}
	for i < len(keys) {
		k := keys[i]
		if !strings.HasPrefix(k, prefix) {
			break
		}
		if delimiter != "" {
			if d := strings.Index(k[len(prefix):], delimiter); d >= 0 {
				cp := k[:len(prefix)+d+len(delimiter)]
				// Skip every key rolled up into cp (they are contiguous).
				next := i + sort.Search(len(keys)-i, func(n int) bool { return !strings.HasPrefix(keys[i+n], cp) })
				if cp > after {
					if len(out) >= limit {
						return out, true
					}
					out = append(out, s3ListEntry{Prefix: cp})
				}
				i = next
				continue
			}
		}
		if len(out) >= limit {
			return out, true
		}
		out = append(out, s3ListEntry{Object: bs.objs[k]})
		i++
	}
	return out, false
}

func s3KeyHash(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

func s3RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func s3ReadJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// s3WriteTemp writes v as JSON to a new fsynced file in dir and returns its name.
func s3WriteTemp(dir string, v any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "meta-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("write metadata: %w", err)
	}
	return f.Name(), nil
}

// s3WriteJSONAtomic replaces path with v as JSON: temp file in tmpDir, fsync, rename, fsync the dir.
func s3WriteJSONAtomic(tmpDir, path string, v any) error {
	tmp, err := s3WriteTemp(tmpDir, v)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write metadata: %w", err)
	}
	s3SyncDir(filepath.Dir(path))
	return nil
}

// s3SyncDir makes renames in dir durable; best effort.
func s3SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
