package allinone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// stepNames say what each validation step checks, as a customer reads it.
var stepNames = map[string]string{
	"VALIDATION_STEP_ASSUME_INTERMEDIATE_ROLE":        "assume s3dest's intermediate role",
	"VALIDATION_STEP_ASSUME_ROLE_WITHOUT_EXTERNAL_ID": "your role refuses us without the External ID",
	"VALIDATION_STEP_ASSUME_ROLE_WITH_EXTERNAL_ID":    "assume your role with the External ID",
	"VALIDATION_STEP_PUT_DUMMY_OBJECT":                "upload segment-logs/dummy-object.txt",
}

// errNotValid is returned when a destination's validation fails.
var errNotValid = errors.New("the destination is not valid")

// validateCommand runs `s3dest validate <destinationId>` (and `s3dest destinations validate`).
func validateCommand(ctx context.Context, args []string, out io.Writer) error {
	c, err := newCommand("validate")
	if err != nil {
		return err
	}
	if _, err := c.parse(args, 1, "s3dest validate [--admin-url URL] [--admin-token TOKEN] <destinationId>"); err != nil {
		return err
	}
	return Validate(ctx, c.conn, c.arg(0), out)
}

// Validate runs the validator on a destination through the admin API and prints each step with its
// outcome, so a customer sees how far it got. It returns an error when the destination is not valid.
func Validate(ctx context.Context, cfg ValidateConfig, destinationID string, out io.Writer) error {
	api, err := newAPIClient(cfg)
	if err != nil {
		return err
	}
	v, err := api.validate(ctx, destinationID)
	if err != nil {
		return err
	}
	printValidation(out, v)
	if !v.Ok {
		return errNotValid
	}
	return nil
}

// validate is POST /destinations/{id}/validate.
func (c *apiClient) validate(ctx context.Context, destinationID string) (*apiValidation, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var got struct {
		Validation apiValidation `json:"validation"`
	}
	if _, err := c.call(ctx, http.MethodPost, "/destinations/"+url.PathEscape(destinationID)+"/validate", nil, &got); err != nil {
		return nil, err
	}
	return &got.Validation, nil
}

// printValidation prints each step with its outcome, then the code and message.
func printValidation(out io.Writer, v *apiValidation) {
	for i, s := range v.Steps {
		mark := "ok  "
		if !s.Ok {
			mark = "FAIL"
		}
		name := stepNames[s.Step]
		if name == "" {
			name = s.Step
		}
		line := fmt.Sprintf("%d. [%s] %s", i+1, mark, name)
		if s.Detail != "" {
			line += " (" + s.Detail + ")"
		}
		fmt.Fprintln(out, line)
	}
	fmt.Fprintf(out, "%s: %s\n", v.Code, v.Message)
}
