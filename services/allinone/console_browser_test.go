package allinone

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/s3dest/s3dest/pkg/testenv"
	"github.com/s3dest/s3dest/services/admin"
)

// consoleScreenshots is where the console test leaves a screenshot of each page (git-ignored with the
// rest of bench/results).
const consoleScreenshots = "../../bench/results/console"

// a11yCheck runs in the page and returns each problem it finds, the basic checks of an automated
// accessibility audit: the document has a language and one main landmark, a banner and one h1; every
// form control has a label; every button and link has an accessible name; no two elements share an
// id; every id that aria-describedby or aria-labelledby names exists; every image has a text
// alternative; nothing focusable hides from the keyboard.
const a11yCheck = `(() => {
  const problems = [];
  const describe = (el) => el.outerHTML.slice(0, 120);
  const named = (el) => (el.getAttribute("aria-label") || "").trim() || (el.getAttribute("aria-labelledby") || "").trim() || el.textContent.trim();
  if (!document.documentElement.lang) problems.push("html has no lang");
  if (document.querySelectorAll("main").length !== 1) problems.push("want one main landmark, got " + document.querySelectorAll("main").length);
  if (!document.querySelector("header")) problems.push("no banner (header)");
  if (document.querySelectorAll("main h1").length !== 1) problems.push("want one h1 in main, got " + document.querySelectorAll("main h1").length);
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    if (!(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby")) problems.push("unlabelled control: " + describe(el));
  }
  for (const el of document.querySelectorAll("button, [role=button]")) if (!named(el)) problems.push("button without a name: " + describe(el));
  for (const el of document.querySelectorAll("a[href]")) if (!named(el)) problems.push("link without a name: " + describe(el));
  const seen = new Map();
  for (const el of document.querySelectorAll("[id]")) seen.set(el.id, (seen.get(el.id) || 0) + 1);
  for (const [id, n] of seen) if (n > 1) problems.push("duplicate id " + id + " (" + n + " times)");
  for (const attr of ["aria-describedby", "aria-labelledby"]) {
    for (const el of document.querySelectorAll("[" + attr + "]")) {
      for (const id of el.getAttribute(attr).split(/\s+/).filter(Boolean)) if (!document.getElementById(id)) problems.push(attr + " names missing id " + id);
    }
  }
  for (const el of document.querySelectorAll("img")) if (!el.hasAttribute("alt")) problems.push("img without alt: " + describe(el));
  for (const el of document.querySelectorAll("svg[role=img]")) if (!named(el)) problems.push("svg image without a name");
  for (const el of document.querySelectorAll("button, a[href], input, select, textarea")) if (el.tabIndex < 0) problems.push("focusable element out of the tab order: " + describe(el));
  return problems;
})()`

// A person runs the console in Chromium against s3dest dev: signs in with the admin token by keyboard,
// reads the workspace's policies, creates a source and rotates and revokes its write keys, creates two
// AWS S3 destinations (first with bad settings, whose errors appear under their inputs), validates one
// with a role set up as the Workspace page says and one whose role may not PutObject, sends events, and
// sees the day's counts appear. Every page passes the basic accessibility checks, and the page logs no
// error but the one 422 the bad settings earn.
func TestTheConsoleSetsUpAndWatchesADestinationInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack and Chromium: skipped under -short")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("needs Debian's chromium to drive the console: `make deps` installs it (apt-get install chromium)")
	}
	if err := os.MkdirAll(consoleScreenshots, 0o755); err != nil {
		t.Fatal(err)
	}
	const ws = "ws-console"
	cfg := devConfig(t, t.TempDir())
	cfg.WorkspaceID = ws
	cfg.DevAWSConfig = devAWSConfig(t, map[string]any{
		"buckets": []any{legacyWritableBucket("console-bucket")}, // the migration starts from a legacy destination
		"roles": []any{
			role("console-good", admin.TrustPolicy(testIntermediate, ws), admin.PermissionPolicy("aws", "console-bucket", "")),
			role("console-no-put", admin.TrustPolicy(testIntermediate, ws), allowDoc("s3:GetObject", "arn:aws:s3:::console-bucket/segment-logs/*")),
		},
	})
	sum, _ := runDev(t, cfg)
	if sum.ConsoleURL != sum.AdminURL+"/console/" {
		t.Fatalf("summary consoleUrl %q, want %s/console/", sum.ConsoleURL, sum.AdminURL)
	}
	b := startBrowser(t, chromium)
	// Confirm dialogs (revoking a write key asks first) are accepted, as a person would.
	if err := chromedp.Listen(b.ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			go chromedp.Call(b.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatal(err)
	}
	c := &consolePage{t: t, b: b}

	// Sign in by keyboard: type the token, press Enter.
	c.run("open the console", chromedp.Navigate(sum.ConsoleURL), chromedp.WaitVisible(`input[name="token"]`))
	c.shot("signin")
	c.check()
	c.run("sign in", chromedp.SendKeys(`input[name="token"]`, sum.AdminToken+"\r"), chromedp.WaitVisible(`#external-id`))
	cookies := c.eval("read document.cookie", `document.cookie`)
	if strings.Contains(cookies, admin.SessionCookie) {
		t.Errorf("the session cookie is readable from the page's JavaScript: %q", cookies)
	}

	// Workspace: the External ID, our role and the reference's policies, filled in.
	c.run("fill in the bucket", chromedp.SetValue(`input[name="bucket"]`, "console-bucket"), chromedp.Click(`form.inline-form button`),
		chromedp.WaitVisible(`#terraform`))
	c.waitText(`#permission-policy`, "arn:aws:s3:::console-bucket/segment-logs/*")
	c.waitText(`#external-id`, ws)
	c.waitText(`#principal-arn`, testIntermediate)
	c.waitText(`#trust-policy`, `"sts:ExternalId": "`+ws+`"`)
	c.waitText(`#terraform`, `bucket_name           = "console-bucket"`)
	c.shot("workspace")
	c.check()
	// The keyboard reaches the page's first control from its content, and shows where focus is.
	c.run("tab into the page", chromedp.Evaluate[chromedp.Void](`document.getElementById("main").focus()`), chromedp.KeyEvent("\t"))
	if got := c.eval("read the focus", `document.activeElement.name + " " + getComputedStyle(document.activeElement).outlineStyle`); got != "bucket solid" {
		t.Errorf("Tab from the page's content focused %q (name, outline), want the bucket input with a solid outline", got)
	}

	// Sources: create one, rotate its write key with a grace period, revoke the retiring key.
	c.run("open sources", goTo("#/sources"), chromedp.WaitVisible(`input[name="slug"]`))
	c.run("create a source", chromedp.SetValue(`input[name="name"]`, "Console source"), chromedp.SetValue(`input[name="slug"]`, "console-src"),
		chromedp.Click(`#new-source-title ~ .actions button`))
	src := c.eventually("the new source's card", `(() => { const h = [...document.querySelectorAll("section.source")].find((s) => s.textContent.includes("console-src")); return h ? h.dataset.sourceId : ""; })()`)
	card := fmt.Sprintf(`section[data-source-id=%q]`, src)
	firstKey := c.eventually("the source's write key", `document.querySelector('`+card+` .key code').textContent`)
	c.run("rotate the write key", chromedp.SetValue(card+` .key input[type="number"]`, "2"), chromedp.Click(card+` button[aria-label^="Rotate"]`))
	c.eventually("the old key retiring", `document.querySelector('`+card+`').textContent.includes("retiring") ? "yes" : ""`)
	c.shot("sources")
	c.check()
	c.run("revoke the retiring key", chromedp.Click(fmt.Sprintf(`%s button[aria-label="Revoke write key %s"]`, card, firstKey)))
	c.eventually("the retiring key gone", `document.querySelector('`+card+`').textContent.includes(`+mustJSON(firstKey)+`) ? "" : "gone"`)
	writeKey := c.eventually("the rotated write key", `document.querySelector('`+card+` .key code').textContent`)

	// Destinations: bad settings first; each error appears under its input.
	c.run("open destinations", goTo("#/destinations"), chromedp.WaitVisible(`input[name="s3Bucket"]`))
	c.run("submit bad settings", chromedp.SetValue(`select[name="sourceId"]`, src), chromedp.SetValue(`input[name="region"]`, "moon-1"),
		chromedp.SetValue(`input[name="s3Bucket"]`, "Bad_Bucket"), chromedp.SetValue(`input[name="iamRoleArn"]`, "not-an-arn"),
		chromedp.Click(`#new-dest-title ~ .actions button`))
	c.waitText(`[data-error-for="region"]`, `"moon-1" is not an AWS region name`)
	c.waitText(`[data-error-for="s3Bucket"]`, `"Bad_Bucket" is not a bucket name`)
	c.waitText(`[data-error-for="iamRoleArn"]`, "must look like arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME")
	c.shot("destinations-errors")
	c.check()
	c.run("submit good settings", chromedp.SetValue(`input[name="region"]`, "us-east-1"), chromedp.SetValue(`input[name="s3Bucket"]`, "console-bucket"),
		chromedp.SetValue(`input[name="iamRoleArn"]`, roleARN("console-good")), chromedp.Click(`#new-dest-title ~ .actions button`),
		chromedp.WaitVisible(`#validate`))
	goodURL := c.location()

	// Validate: every step passes.
	c.run("validate", chromedp.Click(`#validate`))
	c.eventually("four passed steps", `document.querySelectorAll(".steps li.passed").length === 4 && document.querySelector(".outcome .alert.ok") ? "yes" : ""`)
	c.shot("destination-valid")
	c.check()

	// Disable it and enable it again: the API sees each change.
	goodID := goodURL[strings.LastIndex(goodURL, "/")+1:]
	api := testClient(t, sum)
	for _, enabled := range []bool{false, true} {
		button := map[bool]string{false: "Enable", true: "Disable"}[enabled] // what the button offers afterwards
		c.run("toggle the destination", chromedp.Click(`#toggle-destination`))
		c.eventually("the button to offer "+button, `document.querySelector("#toggle-destination").textContent === `+mustJSON(button)+` ? "yes" : ""`)
		var got destAndValidation
		must(t, api, http.MethodGet, "/destinations/"+goodID, nil, &got)
		if got.Destination.Enabled != enabled {
			t.Errorf("after the console's toggle the destination's enabled is %v, want %v", got.Destination.Enabled, enabled)
		}
	}

	// A second source's destination whose role may not PutObject fails at the last step, with the
	// reference's message, and stands out.
	c.run("open sources", goTo("#/sources"), chromedp.WaitVisible(`input[name="slug"]`))
	c.run("create a second source", chromedp.SetValue(`input[name="slug"]`, "console-src-2"), chromedp.Click(`#new-source-title ~ .actions button`))
	src2 := c.eventually("the second source's card", `(() => { const h = [...document.querySelectorAll("section.source")].find((s) => s.textContent.includes("console-src-2")); return h ? h.dataset.sourceId : ""; })()`)
	// Disable the second source and enable it again: the API sees each change.
	for _, enabled := range []bool{false, true} {
		verb := map[bool]string{false: "Disable", true: "Enable"}[enabled]
		next := map[bool]string{false: "Enable", true: "Disable"}[enabled]
		c.run(verb+" the second source", chromedp.Click(fmt.Sprintf(`button[aria-label="%s source console-src-2"]`, verb)))
		c.eventually("the button to "+next+" it", fmt.Sprintf(`document.querySelector('button[aria-label="%s source console-src-2"]') ? "yes" : ""`, next))
		var got struct {
			Source apiSource `json:"source"`
		}
		must(t, api, http.MethodGet, "/sources/"+src2, nil, &got)
		if got.Source.Enabled != enabled {
			t.Errorf("after %s the source's enabled is %v", verb, got.Source.Enabled)
		}
	}
	c.run("open destinations", goTo("#/destinations"), chromedp.WaitVisible(`input[name="s3Bucket"]`))
	c.run("create the failing destination", chromedp.SetValue(`select[name="sourceId"]`, src2), chromedp.SetValue(`input[name="region"]`, "us-east-1"),
		chromedp.SetValue(`input[name="s3Bucket"]`, "console-bucket"), chromedp.SetValue(`input[name="iamRoleArn"]`, roleARN("console-no-put")),
		chromedp.Click(`#new-dest-title ~ .actions button`), chromedp.WaitVisible(`#validate`))
	c.run("validate", chromedp.Click(`#validate`))
	c.eventually("three passed steps and the upload failed", `document.querySelectorAll(".steps li.passed").length === 3 && document.querySelector('.steps li.failed[data-step="VALIDATION_STEP_PUT_DUMMY_OBJECT"]') ? "yes" : ""`)
	c.waitText(`.outcome .ref-message`, "Access Denied. Please add PutObject permissions to the IAM role in the AWS IAM Console.")
	c.waitText(`.outcome`, "What to fix: Attach the permission policy")
	c.run("refresh the status", chromedp.Click(`#status-title ~ button`))
	c.waitText(`#status-title`, "Delivery status")
	c.eventually("the status saying it fails", `(document.querySelector("#status-title").closest("section").querySelector(".alert.error") || {textContent: ""}).textContent.includes("This destination is failing") ? "yes" : ""`)
	c.shot("destination-failing")
	c.check()
	c.run("open destinations", goTo("#/destinations"), chromedp.WaitVisible(`table`))
	c.eventually("the failing row", `[...document.querySelectorAll("tr.failing")].some((r) => r.textContent.includes(`+mustJSON(src2)+`)) ? "yes" : ""`)
	c.shot("destinations")
	c.check()

	// Events sent with the rotated key appear in the day's counts of the valid destination.
	const events = 7
	if code := postTracking(t, sum, "/v1/batch", writeKey, batchBody("console", events)); code != http.StatusOK {
		t.Fatalf("POST /v1/batch with the rotated write key answered %d", code)
	}
	day := time.Now().UTC().Truncate(24 * time.Hour).UnixMilli()
	c.run("open the valid destination", goTo(goodURL[strings.Index(goodURL, "#"):]), chromedp.WaitVisible(`#status-title`))
	cell := fmt.Sprintf(`tr[data-day="%d"] [data-col="events"]`, day)
	testenv.Eventually(t, 60*time.Second, "the day's events in the status table", func() bool {
		got := c.eval("read the day's events", fmt.Sprintf(`(document.querySelector(%q) || {textContent: ""}).textContent`, cell))
		if got == fmt.Sprint(events) {
			return true
		}
		c.run("refresh the status", chromedp.Click(`#status-title ~ button`))
		return false
	})
	c.waitText(fmt.Sprintf(`tr[data-day="%d"] [data-col="files"]`, day), "1")
	c.eventually("the events chart", `document.querySelector("svg.chart rect.bar") ? "yes" : ""`)
	c.shot("status")
	c.check()

	// Migrate a source from its legacy Amazon S3 destination while it keeps sending: the page creates the
	// AWS S3 destination into the test folder, validates it, waits for data, switches the bucket when asked,
	// disables the legacy destination and waits for data in the bucket.
	shop := createSource(t, api, "console-legacy")
	var legacy destAndValidation
	must(t, api, http.MethodPost, "/destinations", map[string]any{"sourceId": shop.ID, "metadataId": "54f418c3db31d978f14aa925",
		"name": "Amazon S3", "settings": apiSettings{Region: "us-east-1", S3Bucket: "console-bucket"}}, &legacy)
	defer keepSending(sum, shop.WriteKeys[0], "console-migrate")()
	c.run("open migrate", goTo("#/migrate"), chromedp.WaitVisible(`#migrate-title`))
	c.check()
	c.run("start the migration", chromedp.SetValue(`select[name="sourceId"]`, shop.ID), chromedp.SetValue(`input[name="iamRoleArn"]`, roleARN("console-good")),
		chromedp.Click(`#migrate-title ~ .actions button`), chromedp.WaitVisible(`#switch-now`))
	c.waitText(`.migration-log`, "bucket console-bucket/segment-logs/test")
	c.waitText(`.migration-log`, "Data arrived.")
	c.shot("migrate-switch")
	c.check()
	c.run("switch", chromedp.Click(`#switch-now`))
	c.waitText(`main`, "Migration done.")
	c.waitText(`.migration-log`, "Disable the Amazon S3 destination "+legacy.Destination.ID)
	c.shot("migrate")
	c.check()
	var got destAndValidation
	must(t, api, http.MethodGet, "/destinations/"+legacy.Destination.ID, nil, &got)
	if got.Destination.Enabled {
		t.Error("the migration left the legacy Amazon S3 destination enabled")
	}

	// Signing out ends the session: the page shows the sign-in again, and a reload stays signed out.
	c.run("sign out", chromedp.Click(`#sign-out`), chromedp.WaitVisible(`input[name="token"]`))
	c.run("reload", chromedp.Navigate(sum.ConsoleURL+"?again#/sources"), chromedp.WaitVisible(`input[name="token"]`))

	// The one refused call was the bad settings' 422.
	var unexpected []string
	expected422 := 1
	b.mu.Lock()
	for _, e := range b.errors {
		if e.source == string(log.EntrySourceNetwork) && strings.Contains(e.text, "status of 422") && expected422 > 0 {
			expected422--
			continue
		}
		unexpected = append(unexpected, fmt.Sprintf("%s: %s %s", e.source, e.text, e.url))
	}
	b.mu.Unlock()
	if len(unexpected) > 0 {
		t.Errorf("the console logged errors:\n%s", strings.Join(unexpected, "\n"))
	}
	if remote := b.remoteRequests(); len(remote) > 0 {
		t.Errorf("the console requested hosts other than 127.0.0.1: %v", remote)
	}
}

func TestDevGreetingNamesTheConsoleURL(t *testing.T) {
	var out strings.Builder
	greet(&out, Summary{ConsoleURL: "http://127.0.0.1:8081/console/"}, time.Second, "secrets.json")
	if !strings.Contains(out.String(), "Open the console at http://127.0.0.1:8081/console/ (sign in with the admin token).") {
		t.Errorf("the greeting does not name the console:\n%s", out.String())
	}
}

// goTo shows another page of the console, as following one of its links does.
func goTo(hash string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void]("location.hash = " + mustJSON(hash))
}

// consolePage drives the console's tab.
type consolePage struct {
	t *testing.T
	b *browser
}

// run runs actions, failing the test with what was being done.
func (c *consolePage) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		c.t.Fatalf("%s: %v\npage errors: %v", what, err, c.b.unexpectedErrors(0))
	}
}

// eval returns the string script evaluates to in the page.
func (c *consolePage) eval(what, script string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.b.ctx, 30*time.Second)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](script))
	if err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
	return got
}

// location is the page's URL.
func (c *consolePage) location() string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.b.ctx, 30*time.Second)
	defer cancel()
	url, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		c.t.Fatal(err)
	}
	return url
}

// eventually waits until script evaluates to a non-empty string, and returns it.
func (c *consolePage) eventually(what, script string) string {
	c.t.Helper()
	var got string
	testenv.Eventually(c.t, 60*time.Second, what, func() bool {
		ctx, cancel := context.WithTimeout(c.b.ctx, 10*time.Second)
		defer cancel()
		got, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { try { return String(`+script+` || ""); } catch { return ""; } })()`))
		return got != ""
	})
	return got
}

// waitText waits until the element's text contains want.
func (c *consolePage) waitText(sel, want string) {
	c.t.Helper()
	c.eventually(fmt.Sprintf("%s to say %q", sel, want),
		fmt.Sprintf(`(document.querySelector(%q) || {textContent: ""}).textContent.includes(%s) ? "yes" : ""`, sel, mustJSON(want)))
}

// check fails the test for each accessibility problem of the page as it is now.
func (c *consolePage) check() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.b.ctx, 30*time.Second)
	defer cancel()
	problems, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](a11yCheck))
	if err != nil {
		c.t.Fatalf("check accessibility: %v", err)
	}
	url := c.location()
	for _, p := range problems {
		c.t.Errorf("%s: %s", url, p)
	}
}

// shot saves a full-page screenshot as bench/results/console/<name>.png, without the passing notice
// (a full-page capture pins it over the content).
func (c *consolePage) shot(name string) {
	c.t.Helper()
	c.run("hide the notice", chromedp.Evaluate[chromedp.Void](`document.getElementById("toast").classList.remove("shown")`))
	ctx, cancel := context.WithTimeout(c.b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(consoleScreenshots, name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}
