package allinone

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// publicAPIClientDir holds the script and the pinned @segment/public-api-sdk-typescript (package-lock.json);
// `make deps` runs npm ci there.
const publicAPIClientDir = "testdata/publicapi-client"

// sdkCall is one line of run.js: a client method it called and what the method returned.
type sdkCall struct {
	Step    string         `json:"step"`
	Method  string         `json:"method"`
	Status  int            `json:"status"`
	Fields  map[string]any `json:"fields"`
	Missing []string       `json:"missing"`
	Error   *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// Segment's official TypeScript client of its Public API, unmodified and with only its basePath set to
// the admin URL, against `s3dest dev`: workspace, catalog, sources, write keys, destinations, paging to
// the end, the reference's migration from Amazon S3 to AWS S3, and the refusals. Every answer holds
// every field the client's types require (run.js checks them against the SDK's model files).
func TestSegmentsPublicAPIClientWorksUnmodifiedAgainstDev(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack and Node.js: skipped under -short")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("needs node (Node.js 18+) for Segment's Public API client: `make deps` installs it (apt-get install nodejs)")
	}
	if _, err := os.Stat(filepath.Join(publicAPIClientDir, "node_modules", "@segment", "public-api-sdk-typescript", "package.json")); err != nil {
		t.Fatalf("needs @segment/public-api-sdk-typescript as pinned in %s/package-lock.json: `make deps` installs it (npm ci): %v", publicAPIClientDir, err)
	}
	sum, _ := runDev(t, devConfig(t, t.TempDir())) // legacy Amazon S3 on, as `s3dest dev` has it

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "run.js", sum.AdminURL, sum.AdminToken)
	cmd.Dir = publicAPIClientDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var calls []sdkCall
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if line == "" {
			continue
		}
		var c sdkCall
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("run.js printed a line that is not JSON: %s", line)
		}
		t.Logf("%-52s %-44s %d %s", c.Step, c.Method, c.Status, strings.TrimPrefix(line, "{"))
		calls = append(calls, c)
	}
	if runErr != nil {
		t.Fatalf("run.js: %v\n%s", runErr, stderr.String())
	}
	for _, c := range calls {
		if len(c.Missing) > 0 {
			t.Errorf("%s: %s answered without fields its type requires: %v", c.Step, c.Method, c.Missing)
		}
	}
	step := func(name string) sdkCall {
		t.Helper()
		i := slices.IndexFunc(calls, func(c sdkCall) bool { return c.Step == name })
		if i < 0 {
			t.Fatalf("run.js made no call %q", name)
		}
		return calls[i]
	}
	expect := func(name string, status int, fields map[string]any) sdkCall {
		t.Helper()
		c := step(name)
		if c.Status != status {
			t.Errorf("%s: %s = %d, want %d (%+v)", name, c.Method, c.Status, status, c.Error)
		}
		for k, want := range fields {
			if got, _ := json.Marshal(c.Fields[k]); string(got) != mustJSON(want) {
				t.Errorf("%s: %s %s = %s, want %s", name, c.Method, k, got, mustJSON(want))
			}
		}
		return c
	}
	refused := func(name string, status int, typ, message string) {
		t.Helper()
		c := step(name)
		if c.Status != status || c.Error == nil || c.Error.Type != typ || !strings.Contains(c.Error.Message, message) {
			t.Errorf("%s: %s = %d %+v, want %d %s naming %q", name, c.Method, c.Status, c.Error, status, typ, message)
		}
	}

	expect("workspace", 200, map[string]any{"id": sum.WorkspaceID, "slug": "s3dest"})
	expect("catalog AWS S3", 200, map[string]any{"slug": "aws-s3", "options": []string{"region:string:true", "s3Bucket:string:true", "iamRoleArn:string:true", "format:string:false"}})
	expect("catalog Amazon S3", 200, map[string]any{"slug": "amazon-s3", "options": []string{"region:string:true", "s3Bucket:string:true", "format:string:false"}})
	web := expect("create source", 201, map[string]any{"slug": "sdk-web", "enabled": true, "workspaceId": sum.WorkspaceID, "metadataId": "IqDTy1TpoU", "writeKeys": 1, "labels": 0})
	expect("get source", 200, map[string]any{"id": web.Fields["id"], "trackingPlanId": nil})
	expect("update source", 200, map[string]any{"name": "SDK Web", "enabled": false})
	expect("update source back", 200, map[string]any{"name": "SDK Web", "enabled": true})

	// Paging with count 1: the demo source and the two created, one a page, next absent on the last.
	pages := slices.DeleteFunc(slices.Clone(calls), func(c sdkCall) bool { return !strings.HasPrefix(c.Step, "list sources page ") })
	if len(pages) != 3 {
		t.Fatalf("listSources with count 1 walked %d pages, want 3", len(pages))
	}
	var listed []any
	for i, p := range pages {
		pg := p.Fields["pagination"].(map[string]any)
		listed = append(listed, p.Fields["ids"].([]any)...)
		if last := i == len(pages)-1; (pg["next"] == "absent") != last || (pg["previous"] == "absent") != (i == 0) || pg["totalEntries"] != 3.0 {
			t.Errorf("page %d of 3: pagination %v", i+1, pg)
		}
	}
	if len(listed) != 3 || !slices.Contains(listed, any(sum.SourceID)) || !slices.Contains(listed, web.Fields["id"]) {
		t.Errorf("pages listed %v", listed)
	}

	expect("create write key", 200, map[string]any{"writeKeys": 2})
	expect("remove write key", 200, map[string]any{"status": "SUCCESS"})
	expect("get source after removing the key", 200, map[string]any{"writeKeys": 1, "removedKeyListed": false})

	// The reference's migration.
	legacy := expect("create legacy destination", 200, map[string]any{"metadataId": "54f418c3db31d978f14aa925", "slug": "amazon-s3", "enabled": true})
	if n := len(slices.DeleteFunc(slices.Clone(calls), func(c sdkCall) bool { return !strings.HasPrefix(c.Step, "migration step 1: list destinations page ") })); n != 2 {
		t.Errorf("listDestinations with count 1 walked %d pages, want 2 (the demo destination and the legacy one)", n)
	}
	expect("migration step 2: create AWS S3 destination", 200, map[string]any{"metadataId": "60be92c8dabdd561bf6c9130", "slug": "aws-s3", "enabled": true,
		"sourceId": web.Fields["id"], "options": []string{"region", "s3Bucket", "iamRoleArn", "format"},
		"settings": map[string]any{"region": "us-west-2", "s3Bucket": "sdk-bucket/segment-logs/test", "iamRoleArn": "arn:aws:iam::123456789012:role/segment-sdk-test", "format": "json"}})
	expect("migration step 2: point it at the bucket", 200, map[string]any{"settings": map[string]any{"region": "us-west-2", "s3Bucket": "sdk-bucket", "iamRoleArn": "arn:aws:iam::123456789012:role/segment-sdk-test", "format": "json"}})
	expect("migration step 3: disable the legacy destination", 200, map[string]any{"id": legacy.Fields["id"], "enabled": false})
	expect("migration: legacy destination after", 200, map[string]any{"id": legacy.Fields["id"], "enabled": false})

	refused("second AWS S3 destination", 422, "validation", "Multiple instance of AWS S3 are not allowed for this source")
	refused("bad region", 422, "validation", "settings.region")
	if f := step("bad region").Error; f == nil || f.Field != "settings.region" {
		t.Errorf("bad region: error %+v, want field settings.region", f)
	}
	refused("unknown source", 404, "not-found", "no-such-source")
	refused("unknown destination", 404, "not-found", "no-such-destination")
	refused("not implemented", 501, "not-implemented", "/tracking-plans")
	refused("unwrap", 0, "not-found", "no-such-source")

	expect("update AWS S3 destination", 200, map[string]any{"name": "AWS S3 (migrated)", "enabled": false})
	expect("delete legacy destination", 200, map[string]any{"status": "SUCCESS"})
	expect("delete AWS S3 destination", 200, map[string]any{"status": "SUCCESS"})
	refused("deleted destination", 404, "not-found", "does not exist")
	expect("delete source", 200, map[string]any{"status": "SUCCESS"})
	expect("delete source with no destinations left", 200, map[string]any{"status": "SUCCESS"})
	refused("deleted source", 404, "not-found", "does not exist")
	if n := len(slices.DeleteFunc(slices.Clone(calls), func(c sdkCall) bool { return !strings.HasPrefix(c.Step, "list sources after page ") })); n != 1 {
		t.Errorf("after the deletions listSources walked %d pages, want 1 (the demo source)", n)
	}
}
