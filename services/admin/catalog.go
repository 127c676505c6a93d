package admin

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
)

// The catalog: the two destinations s3dest implements, as Segment's catalog describes a destination
// (GET /catalog/destinations/{id}), with their settings schema as options. A destination's metadata in
// every answer is its catalog entry; only id, slug and name are stored with the destination.

// destinationOption is one setting of the settings schema (settings.go applies its rules).
func destinationOption(name, label, description string) *configv1.IntegrationOption {
	return &configv1.IntegrationOption{Name: name, Type: "string", Required: true, Label: label, Description: description,
		DefaultValue: structpb.NewStringValue("")}
}

// catalogEntry returns the catalog entry of a metadata ID (a new message each call).
func catalogEntry(id string) (*configv1.DestinationMetadata, bool) {
	region := destinationOption("region", "AWS Region", "The AWS Region where your S3 Bucket resides, such as us-west-2.")
	bucket := destinationOption("s3Bucket", "Bucket Name", "Your S3 bucket name (not its URI), optionally followed by /path/prefix.")
	role := destinationOption("iamRoleArn", "IAM Role ARN",
		"The ARN of the IAM role that s3dest will assume to connect to your S3 Bucket: arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME.")
	format := &configv1.IntegrationOption{Name: "format", Type: "string", Label: "File Format",
		Description:  "json (the default): gzipped newline-delimited JSON files ({file}.gz), as Segment writes them; parquet: zstd Parquet files ({file}.parquet) with typed columns (docs/querying.md).",
		DefaultValue: structpb.NewStringValue(layout.FormatJSON)}
	var md *configv1.DestinationMetadata
	switch id {
	case layout.AWSS3MetadataID:
		md = &configv1.DestinationMetadata{
			Id: id, Slug: layout.AWSS3Slug, Name: "AWS S3", Status: "PUBLIC",
			Description: "Puts the raw logs of the data s3dest receives into your S3 bucket, written with short-lived " +
				"credentials of an IAM role you create, which requires your workspace ID as External ID.",
			Options:           []*configv1.IntegrationOption{region, bucket, role, format},
			PreviousNames:     []string{"AWS S3 with IAM Role Support"},
			SupportedFeatures: &configv1.DestinationFeatures{CloudModeInstances: "SINGLE", DeviceModeInstances: "NONE"},
		}
	case layout.AmazonS3MetadataID:
		md = &configv1.DestinationMetadata{
			Id: id, Slug: layout.AmazonS3Slug, Name: "Amazon S3", Status: "DEPRECATED",
			Description: "The legacy Amazon S3 destination: writes the raw logs into your bucket as s3dest's own principal, " +
				"without an IAM role. Off unless the operator starts admin and the copier with --enable-legacy-s3; migrate to AWS S3.",
			Options:           []*configv1.IntegrationOption{region, bucket, format},
			PreviousNames:     []string{},
			SupportedFeatures: &configv1.DestinationFeatures{CloudModeInstances: "MULTIPLE", DeviceModeInstances: "NONE"},
		}
	default:
		return nil, false
	}
	// What the two share: every event of the source is stored as it arrived, whatever its type.
	md.Logos = &configv1.Logos{Default: ""}
	md.Website = "https://aws.amazon.com/s3"
	md.Categories = []string{"Raw Data", "Storage"}
	md.Components = []*configv1.DestinationComponent{{Type: "SERVER", Code: "https://github.com/s3dest/s3dest"}}
	md.SupportedMethods = &configv1.DestinationMethods{Pageview: true, Identify: true, Alias: true, Track: true, Group: true}
	md.SupportedPlatforms = &configv1.DestinationPlatforms{Browser: true, Server: true, Mobile: true}
	md.Actions, md.Presets = []*structpb.Struct{}, []*structpb.Struct{}
	return md, true
}

// storedMetadata is what a destination stores of its kind: id, slug and name.
func storedMetadata(md *configv1.DestinationMetadata) *configv1.DestinationMetadata {
	return &configv1.DestinationMetadata{Id: md.GetId(), Slug: md.GetSlug(), Name: md.GetName()}
}

// presentDestination is d as answers show it: a copy with its kind's catalog entry as metadata.
func presentDestination(d *configv1.Destination) *configv1.Destination {
	out := proto.CloneOf(d)
	if out.GetSettings() != nil && out.GetSettings().GetFormat() == "" {
		out.Settings.Format = layout.FormatJSON // what an empty format means
	}
	if md, ok := catalogEntry(d.GetMetadata().GetId()); ok {
		out.Metadata = md
	}
	return out
}

// GetDestinationMetadata implements AdminService: GET /catalog/destinations/{id}.
func (s *Server) GetDestinationMetadata(_ context.Context, req *adminv1.GetDestinationMetadataRequest) (*adminv1.GetDestinationMetadataResponse, error) {
	md, ok := catalogEntry(req.GetDestinationMetadataId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "destinationMetadataId: %q is not a destination s3dest implements: AWS S3 is %s, Amazon S3 %s",
			req.GetDestinationMetadataId(), layout.AWSS3MetadataID, layout.AmazonS3MetadataID)
	}
	return &adminv1.GetDestinationMetadataResponse{Data: &adminv1.GetDestinationMetadataResponse_Data{DestinationMetadata: md}}, nil
}

// Sources: s3dest treats every kind of source alike (events arrive with a write key), so a source's
// metadata is the ID it was created with and a description of what s3dest does with it. The one entry
// with Segment's own values is its JavaScript source, which Segment's examples create.
const (
	// defaultSourceMetadataID is the kind of a source created without a metadataId.
	defaultSourceMetadataID = "s3dest-tracking-api"
	javascriptMetadataID    = "IqDTy1TpoU"
)

// sourceMetadata is the catalog entry of a source kind.
func sourceMetadata(id string) *configv1.SourceMetadata {
	if id == "" {
		id = defaultSourceMetadataID
	}
	if id == javascriptMetadataID {
		return &configv1.SourceMetadata{Id: id, Name: "Javascript", Slug: "javascript", Categories: []string{"Website"},
			Description: "analytics.js in the browser, sending events to the Tracking API with the source's write key.",
			Logos:       &configv1.Logos{Default: ""}, Options: []*configv1.IntegrationOption{}}
	}
	return &configv1.SourceMetadata{Id: id, Name: "Tracking API", Slug: "tracking-api", Categories: []string{"Server"},
		Description: "Any Segment library or HTTP client sending events to the Tracking API (or JetStream) with the source's write key.",
		Logos:       &configv1.Logos{Default: ""}, Options: []*configv1.IntegrationOption{}}
}

// presentSource is src as answers show it: a copy with the workspace ID, its kind's catalog entry as
// metadata, and no labels.
func presentSource(src *configv1.Source, workspaceID string) *configv1.Source {
	out := proto.CloneOf(src)
	out.WorkspaceId = workspaceID
	out.Metadata = sourceMetadata(src.GetMetadata().GetId())
	out.Labels = []*configv1.Label{}
	return out
}
