package layout

import (
	"errors"
	"testing"
)

func TestSplitBucketSeparatesTheBucketFromThePathPrefix(t *testing.T) {
	cases := []struct {
		setting, bucket, prefix string
	}{
		{"mybucket", "mybucket", ""},
		{"mytestbucket/path/prefix", "mytestbucket", "path/prefix/"},
		{"b/segment-logs/test", "b", "segment-logs/test/"},
		{"b/trailing/", "b", "trailing/"},
	}
	for _, c := range cases {
		b, p, err := SplitBucket(c.setting)
		if err != nil || b != c.bucket || p != c.prefix {
			t.Errorf("SplitBucket(%q) = %q, %q, %v; want %q, %q", c.setting, b, p, err, c.bucket, c.prefix)
		}
	}
}

func TestSplitBucketRefusesURIs(t *testing.T) {
	for _, s := range []string{"s3://b/p", "arn:aws:s3:::b", "https://b.s3.amazonaws.com", "S3://B"} {
		if _, _, err := SplitBucket(s); !errors.Is(err, ErrURI) {
			t.Errorf("SplitBucket(%q) = %v, want ErrURI", s, err)
		}
	}
}

func TestObjectKeyFollowsTheReferenceLayout(t *testing.T) {
	got := ObjectKey("path/prefix/", "src1", 1700006400000, "a.gz")
	if want := "path/prefix/segment-logs/src1/1700006400000/a.gz"; got != want {
		t.Fatalf("ObjectKey = %q, want %q", got, want)
	}
	if got := DummyObjectKey(""); got != "segment-logs/dummy-object.txt" {
		t.Fatalf("DummyObjectKey = %q", got)
	}
}
