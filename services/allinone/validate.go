package allinone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
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

func validateCommand(a *app) *cobra.Command {
	cmd := a.validateCmd()
	cmd.GroupID = groupManage
	return a.addClientFlags(cmd)
}

// validateCmd is `s3dest validate` and `s3dest destinations validate`.
func (a *app) validateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate <destinationId>",
		Short: "check a destination's IAM setup, step by step (the reference's Validate)",
		Long: `Runs the reference's Validate steps on the destination now and prints each with its outcome, then
the result's code and message. Exits 3 when the destination is not valid (--json: the API's
{"validation": {...}}, with the same exit code).`,
		Args: positional("<destinationId>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.clientConfig(cmd)
			if err != nil {
				return err
			}
			if a.json {
				api, err := newAPIClient(cfg)
				if err != nil {
					return err
				}
				v, raw, err := api.validateRaw(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if err := printJSON(a.out, raw); err != nil {
					return err
				}
				return notValid(v)
			}
			return Validate(cmd.Context(), cfg, args[0], a.out)
		},
	}
}

// notValid is the error of a failed validation (exit 3), nil for a valid destination.
func notValid(v *apiValidation) error {
	if v.Ok {
		return nil
	}
	return withExit(ExitCheckFailed, fmt.Errorf("%w: %s", errNotValid, v.Code))
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
	return notValid(v)
}

// validate is POST /destinations/{id}/validate.
func (c *apiClient) validate(ctx context.Context, destinationID string) (*apiValidation, error) {
	v, _, err := c.validateRaw(ctx, destinationID)
	return v, err
}

// validateRaw is validate, with the API's data as it came.
func (c *apiClient) validateRaw(ctx context.Context, destinationID string) (*apiValidation, json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var got struct {
		Validation apiValidation `json:"validation"`
	}
	raw, err := c.call(ctx, http.MethodPost, "/destinations/"+url.PathEscape(destinationID)+"/validate", nil, &got)
	if err != nil {
		return nil, nil, err
	}
	return &got.Validation, raw, nil
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
