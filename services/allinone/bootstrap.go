package allinone

import (
	"context"
	"fmt"

	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
	"github.com/s3dest/s3dest/services/admin"
)

const demoSlug = "demo"

type demo struct {
	sourceID, writeKey, destinationID string
}

// bootstrap makes sure the demo source and its destination exist, through the admin API itself, so the
// demo obeys every rule a user's setup does. It is idempotent: a restart finds and reuses them.
func bootstrap(ctx context.Context, adm *admin.Server, region string) (demo, error) {
	var d demo
	src, err := findSource(ctx, adm)
	if err != nil {
		return d, err
	}
	if src == nil {
		out, err := adm.CreateSource(ctx, &adminv1.CreateSourceRequest{Slug: demoSlug, Name: "Demo source"})
		if err != nil {
			return d, fmt.Errorf("create the demo source: %w", err)
		}
		src = out.GetData().GetSource()
	}
	d.sourceID = src.GetId()
	if keys := src.GetWriteKeys(); len(keys) > 0 {
		d.writeKey = keys[0]
	}

	dests, err := adm.ListDestinations(ctx, &adminv1.ListDestinationsRequest{Pagination: &adminv1.PaginationInput{Count: 200}})
	if err != nil {
		return d, err
	}
	for _, dst := range dests.GetData().GetDestinations() {
		if dst.GetSourceId() == d.sourceID && dst.GetMetadata().GetId() == layout.AWSS3MetadataID {
			d.destinationID = dst.GetId()
			return d, nil
		}
	}
	out, err := adm.CreateDestination(ctx, &adminv1.CreateDestinationRequest{
		SourceId:   d.sourceID,
		MetadataId: layout.AWSS3MetadataID,
		Name:       "Demo bucket",
		Settings:   &configv1.DestinationSettings{Region: region, S3Bucket: demoBucket, IamRoleArn: demoRoleARN},
	})
	if err != nil {
		return d, fmt.Errorf("create the demo destination: %w", err)
	}
	d.destinationID = out.GetData().GetDestination().GetId()
	return d, nil
}

func findSource(ctx context.Context, adm *admin.Server) (*configv1.Source, error) {
	page := &adminv1.PaginationInput{Count: 200}
	for {
		out, err := adm.ListSources(ctx, &adminv1.ListSourcesRequest{Pagination: page})
		if err != nil {
			return nil, err
		}
		for _, s := range out.GetData().GetSources() {
			if s.GetSlug() == demoSlug {
				return s, nil
			}
		}
		next := out.GetData().GetPagination().GetNext()
		if next == "" {
			return nil, nil
		}
		page = &adminv1.PaginationInput{Count: 200, Cursor: next}
	}
}
