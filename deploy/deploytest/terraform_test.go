package deploytest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/s3dest/s3dest/services/admin"
)

var terraformDir = filepath.Join(repoRoot, "deploy", "terraform")

// terraformModule is one directory's .tf files, parsed.
type terraformModule struct {
	dir    string
	bodies []*hclsyntax.Body
}

func parseModule(t *testing.T, dir string) terraformModule {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no .tf files (%v)", dir, err)
	}
	p := hclparse.NewParser()
	m := terraformModule{dir: dir}
	for _, f := range files {
		file, diags := p.ParseHCLFile(f)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", f, diags.Error())
		}
		m.bodies = append(m.bodies, file.Body.(*hclsyntax.Body))
	}
	return m
}

func (m terraformModule) blocks(typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range m.bodies {
		for _, bl := range b.Blocks {
			if bl.Type == typ {
				out = append(out, bl)
			}
		}
	}
	return out
}

// TestTheTerraformModulesDeclareAndDocumentWhatTheyUse parses every module and example: each var.X used is
// a declared variable, and every variable and output has a description; the files are terraform fmt's.
func TestTheTerraformModulesDeclareAndDocumentWhatTheyUse(t *testing.T) {
	dirs := []string{"customer", "customer/examples/staging-and-production", "operator", "operator/examples/eks"}
	for _, d := range dirs {
		m := parseModule(t, filepath.Join(terraformDir, d))
		declared := map[string]bool{}
		for _, v := range m.blocks("variable") {
			declared[v.Labels[0]] = true
			if _, ok := v.Body.Attributes["description"]; !ok {
				t.Errorf("%s: variable %q has no description", d, v.Labels[0])
			}
		}
		for _, o := range m.blocks("output") {
			if _, ok := o.Body.Attributes["description"]; !ok {
				t.Errorf("%s: output %q has no description", d, o.Labels[0])
			}
		}
		used := map[string]bool{}
		for _, b := range m.bodies {
			_ = hclsyntax.VisitAll(b, func(n hclsyntax.Node) hcl.Diagnostics {
				if e, ok := n.(*hclsyntax.ScopeTraversalExpr); ok && e.Traversal.RootName() == "var" && len(e.Traversal) > 1 {
					if a, ok := e.Traversal[1].(hcl.TraverseAttr); ok {
						used[a.Name] = true
					}
				}
				return nil
			})
		}
		for v := range used {
			if !declared[v] {
				t.Errorf("%s uses var.%s, which it does not declare", d, v)
			}
		}
		for v := range declared {
			if !used[v] {
				t.Errorf("%s declares variable %q and never uses it", d, v)
			}
		}
	}
	prod := parseModule(t, filepath.Join(terraformDir, "customer/examples/staging-and-production"))
	var names []string
	for _, mod := range prod.blocks("module") {
		v, diags := mod.Body.Attributes["name"].Expr.Value(nil)
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		names = append(names, v.AsString())
	}
	if len(names) != 2 || names[0] == names[1] {
		t.Errorf("the example must use the customer module twice in one account with two role names, got %v", names)
	}

	tf, err := exec.LookPath("terraform")
	if err != nil {
		t.Log("terraform is not installed: terraform fmt -check is not run (the HCL checks above are)")
		return
	}
	cmd := exec.Command(tf, "fmt", "-check", "-recursive", "-diff", terraformDir)
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("terraform fmt -check: %v\n%s", err, out)
	}
}

// TestTheCustomerModulesPoliciesAreWhatS3destWorkspacePrints evaluates the customer module's policy locals
// (jsonencode, as Terraform does) for a few inputs and compares them, as JSON, with the trust, permission
// and KMS policies the admin API (and so `s3dest workspace`) gives for the same workspace and bucket.
func TestTheCustomerModulesPoliciesAreWhatS3destWorkspacePrints(t *testing.T) {
	m := parseModule(t, filepath.Join(terraformDir, "customer"))
	const ws, principal = "ws_2Qk8bX", "arn:aws:iam::123456789012:role/s3dest-intermediate"
	const key = "arn:aws:kms:us-west-2:210987654321:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	for _, c := range []struct{ partition, bucket, prefix string }{
		{"aws", "acme-events", ""},
		{"aws", "acme-events", "team-a/prod"},
		{"aws-cn", "acme-cn", "x"},
		{"aws-us-gov", "acme-gov", ""},
	} {
		locals := evalLocals(t, m, map[string]cty.Value{
			"workspace_id": cty.StringVal(ws), "intermediate_role_arn": cty.StringVal(principal),
			"bucket": cty.StringVal(c.bucket), "prefix": cty.StringVal(c.prefix), "partition": cty.StringVal(c.partition),
			"kms_key_arn": cty.StringVal(key), "name": cty.StringVal("S3destAWSS3Role"), "tags": cty.MapValEmpty(cty.String),
		})
		prefix := c.prefix
		if prefix != "" {
			prefix += "/"
		}
		for local, want := range map[string]string{
			"trust_policy":      admin.TrustPolicy(principal, ws),
			"permission_policy": admin.PermissionPolicy(c.partition, c.bucket, prefix),
			"kms_policy":        admin.KMSPolicy(key),
		} {
			got, ok := locals[local]
			if !ok {
				t.Fatalf("the customer module has no local %s", local)
			}
			var g, w any
			if err := json.Unmarshal([]byte(got.AsString()), &g); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(want), &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%+v: local.%s is\n%s\nbut s3dest workspace prints\n%s", c, local, got.AsString(), want)
			}
		}
	}
}

// evalLocals evaluates every local of m with the variables vars, in dependency order, as Terraform does.
func evalLocals(t *testing.T, m terraformModule, vars map[string]cty.Value) map[string]cty.Value {
	t.Helper()
	pending := map[string]hcl.Expression{}
	for _, b := range m.blocks("locals") {
		for name, a := range b.Body.Attributes {
			pending[name] = a.Expr
		}
	}
	done := map[string]cty.Value{}
	funcs := map[string]function.Function{"jsonencode": stdlib.JSONEncodeFunc, "trimsuffix": stdlib.TrimSuffixFunc}
	for len(pending) > 0 {
		progress := false
		names := make([]string, 0, len(pending))
		for n := range pending {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			ready := true
			for _, tr := range pending[n].Variables() {
				if tr.RootName() == "local" {
					if _, ok := done[tr[1].(hcl.TraverseAttr).Name]; !ok {
						ready = false
					}
				}
			}
			if !ready {
				continue
			}
			ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(vars), "local": cty.ObjectVal(done)}, Functions: funcs}
			v, diags := pending[n].Value(ctx)
			if diags.HasErrors() {
				t.Fatalf("local.%s: %s", n, diags.Error())
			}
			done[n], progress = v, true
			delete(pending, n)
		}
		if !progress {
			t.Fatalf("locals refer to each other in a cycle or to unknown locals: %s", strings.Join(names, ", "))
		}
	}
	return done
}
