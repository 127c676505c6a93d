package allinone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// ValidateConfig is what `s3dest validate <destinationId>` needs to reach the admin API.
type ValidateConfig struct {
	AdminURL string `flag:"admin-url" env:"S3DEST_ADMIN_URL" default:"http://127.0.0.1:8081" help:"the admin REST API"`
	Token    string `flag:"token" env:"S3DEST_ADMIN_TOKEN" help:"the admin bearer token"`
}

// stepNames say what each validation step checks, as a customer reads it.
var stepNames = map[string]string{
	"VALIDATION_STEP_ASSUME_INTERMEDIATE_ROLE":        "assume s3dest's intermediate role",
	"VALIDATION_STEP_ASSUME_ROLE_WITHOUT_EXTERNAL_ID": "your role refuses us without the External ID",
	"VALIDATION_STEP_ASSUME_ROLE_WITH_EXTERNAL_ID":    "assume your role with the External ID",
	"VALIDATION_STEP_PUT_DUMMY_OBJECT":                "upload segment-logs/dummy-object.txt",
}

// Validate runs the validator on a destination through the admin API and prints each step with its
// outcome, so a customer sees how far it got. It returns an error when the destination is not valid.
func Validate(ctx context.Context, cfg ValidateConfig, destinationID string, out io.Writer) error {
	if cfg.Token == "" {
		return errors.New("token: the admin bearer token is required (--token or S3DEST_ADMIN_TOKEN)")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(cfg.AdminURL, "/")+"/destinations/"+destinationID+"/validate", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach the admin API: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Validation struct {
				Ok      bool   `json:"ok"`
				Code    string `json:"code"`
				Message string `json:"message"`
				Steps   []struct {
					Step   string `json:"step"`
					Ok     bool   `json:"ok"`
					Detail string `json:"detail"`
				} `json:"steps"`
			} `json:"validation"`
		} `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("admin API answered %d with no JSON: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		if len(body.Errors) > 0 {
			return fmt.Errorf("admin API: %s", body.Errors[0].Message)
		}
		return fmt.Errorf("admin API answered %d", resp.StatusCode)
	}
	v := body.Data.Validation
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
	if !v.Ok {
		return errors.New("the destination is not valid")
	}
	return nil
}
