package querytest

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"
)

// queryRE finds the DuckDB queries of docs/querying.md: a comment naming the format and the query, then
// the sql block.
var queryRE = regexp.MustCompile("(?s)<!-- duckdb (json|parquet): ([a-z0-9-]+) -->\\s*```sql\\n(.*?)```")

// docQueries returns docs/querying.md's DuckDB queries: name → format → SQL.
func docQueries(t *testing.T) map[string]map[string]string {
	t.Helper()
	doc, err := os.ReadFile("../querying.md")
	if err != nil {
		t.Fatal(err)
	}
	queries := map[string]map[string]string{}
	for _, m := range queryRE.FindAllSubmatch(doc, -1) {
		format, name := string(m[1]), string(m[2])
		if queries[name] == nil {
			queries[name] = map[string]string{}
		}
		if _, dup := queries[name][format]; dup {
			t.Fatalf("docs/querying.md has two %s forms of %s", format, name)
		}
		queries[name][format] = string(m[3])
	}
	if len(queries) == 0 {
		t.Fatal("docs/querying.md has no <!-- duckdb FORMAT: NAME --> queries")
	}
	return queries
}

// deliver runs the pipeline test that sends the same events to a json and a parquet destination of one
// source, through MinIO behind the STS gate, and has it copy the delivered files into dir.
func deliver(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("go", "test", "-count=1", "-run", "^TestTheSameEventsDeliveredAsJSONAndAsParquetReadBackEqual$", ".")
	cmd.Dir = "../../services/allinone"
	cmd.Env = append(os.Environ(), "S3DEST_DELIVERED_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the pipeline test that delivers the files failed: %v\n%s", err, out)
	}
	for _, pattern := range []string{"segment-logs/*/*/*.gz", "segment-logs/*/*/*.parquet"} {
		if files, _ := filepath.Glob(filepath.Join(dir, pattern)); len(files) == 0 {
			t.Fatalf("no %s delivered into %s", pattern, dir)
		}
	}
}

// rows runs a query and returns its rows as text.
func rows(t *testing.T, db *sql.DB, query string) [][]string {
	t.Helper()
	rs, err := db.Query(query)
	if err != nil {
		t.Fatalf("%v\n%s", err, query)
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rs.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = fmt.Sprint(v)
		}
		out = append(out, row)
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("%v\n%s", err, query)
	}
	return out
}

func TestTheDuckDBQueriesOfTheDocsAnswerTheSameOnBothFormats(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline against NATS, redis-server and MinIO (make deps); not under -short")
	}
	queries := docQueries(t)
	dir := t.TempDir()
	deliver(t, dir)
	t.Chdir(dir) // the queries read segment-logs/… relative to where they run, as the page says

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	names := make([]string, 0, len(queries))
	for name := range queries {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			forms := queries[name]
			if forms["json"] == "" || forms["parquet"] == "" {
				t.Fatalf("%s needs both a json and a parquet form in docs/querying.md, has %v", name, forms)
			}
			j, p := rows(t, db, forms["json"]), rows(t, db, forms["parquet"])
			if len(j) == 0 {
				t.Fatalf("%s answers nothing on the delivered files", name)
			}
			if !slices.EqualFunc(j, p, slices.Equal) {
				t.Fatalf("%s answers differently:\njson:    %v\nparquet: %v", name, j, p)
			}
			t.Logf("%s: %v", name, j)
		})
	}
}

func TestEveryDuckDBQueryOfTheDocsIsFound(t *testing.T) {
	doc, err := os.ReadFile("../querying.md")
	if err != nil {
		t.Fatal(err)
	}
	marked := bytes.Count(doc, []byte("<!-- duckdb "))
	found := 0
	for _, forms := range docQueries(t) {
		found += len(forms)
	}
	if found != marked || !strings.Contains(string(doc), "## DuckDB") {
		t.Fatalf("docs/querying.md marks %d DuckDB queries, the extraction finds %d", marked, found)
	}
}
