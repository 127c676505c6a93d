package layout

import (
	"errors"
	"strings"
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

func TestAParquetDestinationNamesItsFileParquetInsteadOfGz(t *testing.T) {
	cases := []struct{ name, format, want string }{
		{"b-1-2.gz", "", "b-1-2.gz"},
		{"b-1-2.gz", FormatJSON, "b-1-2.gz"},
		{"b-1-2.gz", FormatParquet, "b-1-2.parquet"},
	}
	for _, c := range cases {
		if got := FileName(c.name, c.format); got != c.want {
			t.Errorf("FileName(%q, %q) = %q, want %q", c.name, c.format, got, c.want)
		}
	}
}

func TestCheckFormatNamesTheAllowedValues(t *testing.T) {
	for _, ok := range []string{"", "json", "parquet"} {
		if err := CheckFormat(ok); err != nil {
			t.Errorf("CheckFormat(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"JSON", "csv", "parquet "} {
		err := CheckFormat(bad)
		if err == nil || !strings.Contains(err.Error(), `"json"`) || !strings.Contains(err.Error(), `"parquet"`) {
			t.Errorf("CheckFormat(%q) = %v, want an error naming json and parquet", bad, err)
		}
	}
}
