# Our side of the AWS S3 (IAM role) destination: the intermediate role every s3dest pod runs as (IRSA: the
# chart's ServiceAccount, by the EKS cluster's OIDC provider), which customer roles trust and which may only
# assume other roles and use the staging bucket; and the staging bucket, private, encrypted, its files
# expiring after the retention.

locals {
  role_name      = "${var.prefix}-intermediate"
  staging_bucket = "${var.prefix}-staging"
  bucket_arn     = "arn:${var.partition}:s3:::${local.staging_bucket}"

  trust_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = var.oidc_provider_arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${var.oidc_provider_url}:sub" = "system:serviceaccount:${var.namespace}:${var.service_account}"
          "${var.oidc_provider_url}:aud" = "sts.amazonaws.com"
        }
      }
    }]
  })

  permission_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Customer roles: each trusts this role with the workspace ID as External ID.
        Sid      = "AssumeCustomerRoles"
        Effect   = "Allow"
        Action   = "sts:AssumeRole"
        Resource = "arn:${var.partition}:iam::*:role/*"
      },
      {
        Sid      = "StagingObjects"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        Resource = "${local.bucket_arn}/*"
      },
      {
        Sid      = "StagingBucket"
        Effect   = "Allow"
        Action   = ["s3:ListBucket", "s3:GetBucketLocation"]
        Resource = local.bucket_arn
      },
    ]
  })
}

resource "aws_iam_role" "intermediate" {
  name               = local.role_name
  description        = "s3dest's intermediate role: runs every s3dest pod, assumes customer roles"
  assume_role_policy = local.trust_policy
  tags               = var.tags
}

resource "aws_iam_role_policy" "intermediate" {
  name   = "${local.role_name}-policy"
  role   = aws_iam_role.intermediate.id
  policy = local.permission_policy
}

resource "aws_s3_bucket" "staging" {
  bucket = local.staging_bucket
  tags   = var.tags
}

resource "aws_s3_bucket_public_access_block" "staging" {
  bucket                  = aws_s3_bucket.staging.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "staging" {
  bucket = aws_s3_bucket.staging.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "staging" {
  bucket = aws_s3_bucket.staging.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.staging_kms_key_arn == "" ? "AES256" : "aws:kms"
      kms_master_key_id = var.staging_kms_key_arn == "" ? null : var.staging_kms_key_arn
    }
    bucket_key_enabled = var.staging_kms_key_arn != ""
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "staging" {
  bucket = aws_s3_bucket.staging.id
  rule {
    id     = "expire-staged-files"
    status = "Enabled"
    filter {}
    expiration {
      days = var.staging_retention_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}
