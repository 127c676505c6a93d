package admin

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"

	validatorv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/validator/v1"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// heldValidator is the validator's client with each answer held until the test gives it, to order a
// validation's end against a settings change. (The real validator is tested in its own module and,
// through this API, in services/allinone/cli_validate_test.go.)
type heldValidator struct{ calls chan heldCall }

type heldCall struct {
	req    *validatorv1.ValidateRequest
	answer chan validatorv1.ValidationCode
}

func (h heldValidator) Validate(ctx context.Context, req *validatorv1.ValidateRequest, _ ...grpc.CallOption) (*validatorv1.ValidateResponse, error) {
	c := heldCall{req: req, answer: make(chan validatorv1.ValidationCode)}
	h.calls <- c
	select {
	case code := <-c.answer:
		return &validatorv1.ValidateResponse{Result: &validatorv1.ValidationResult{Ok: code == validatorv1.ValidationCode_VALIDATION_CODE_OK, Code: code}}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (h heldValidator) next(t *testing.T) heldCall {
	t.Helper()
	select {
	case c := <-h.calls:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no validation was asked for")
		return heldCall{}
	}
}

func TestTheShownValidationIsAlwaysThatOfTheCurrentSettings(t *testing.T) {
	val := heldValidator{calls: make(chan heldCall, 4)}
	a, srv := newAPIWith(t, val, WithLegacyS3(true))
	src := a.ok("POST", "/sources", `{"slug":"v"}`)["source"].(map[string]any)["id"].(string)
	validationOf := func(id string) any { return a.ok("GET", "/destinations/"+id, "")["validation"] }

	// Creating validates in the background; the answer does not wait for it.
	d := a.ok("POST", "/destinations", `{"sourceId":"`+src+`","metadataId":"60be92c8dabdd561bf6c9130",
		"settings":{"region":"us-east-1","s3Bucket":"b1b","iamRoleArn":"arn:aws:iam::123456789012:role/first"}}`)
	id := d["destination"].(map[string]any)["id"].(string)
	if d["validation"] != nil {
		t.Fatalf("create answered with a validation before one ran: %v", d["validation"])
	}
	first := val.next(t)
	if first.req.GetSettings().GetIamRoleArn() != "arn:aws:iam::123456789012:role/first" {
		t.Fatalf("validation asked for %v", first.req)
	}

	// The settings change while the first validation runs: the second validation's result is shown,
	// and the first one's, arriving later, is dropped.
	a.ok("PATCH", "/destinations/"+id, `{"settings":{"iamRoleArn":"arn:aws:iam::123456789012:role/second"}}`)
	second := val.next(t)
	second.answer <- validatorv1.ValidationCode_VALIDATION_CODE_OK
	testenv.Eventually(t, 5*time.Second, "the second validation to be shown", func() bool { return validationOf(id) != nil })
	first.answer <- validatorv1.ValidationCode_VALIDATION_CODE_PUT_OBJECT_DENIED
	srv.Close() // waits for the first validation to finish
	if v := validationOf(id).(map[string]any); v["code"] != "VALIDATION_CODE_OK" {
		t.Fatalf("shown validation = %v, want the second (OK)", v)
	}

	// A change that is not a settings change keeps the validation; a settings change removes it at once.
	if v := a.ok("PATCH", "/destinations/"+id, `{"enabled":false}`)["validation"].(map[string]any); v["code"] != "VALIDATION_CODE_OK" {
		t.Fatalf("PATCH enabled answered validation %v", v)
	}
	a.ok("PATCH", "/destinations/"+id, `{"settings":{"s3Bucket":"b2b"}}`)
	if v := validationOf(id); v != nil {
		t.Fatalf("after a settings change, the old validation is still shown: %v", v)
	}
	third := val.next(t)
	third.answer <- validatorv1.ValidationCode_VALIDATION_CODE_PUT_OBJECT_DENIED
	testenv.Eventually(t, 5*time.Second, "the third validation to be shown", func() bool { return validationOf(id) != nil })

	// Legacy destinations have no role: nothing is validated.
	a.ok("POST", "/destinations", `{"sourceId":"`+src+`","metadataId":"54f418c3db31d978f14aa925","settings":{"region":"us-east-1","s3Bucket":"b1b"}}`)
	srv.Close()
	select {
	case c := <-val.calls:
		t.Fatalf("a legacy destination was validated: %v", c.req)
	default:
	}
}
