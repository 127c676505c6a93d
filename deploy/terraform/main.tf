# The customer side of the AWS S3 destination, as the reference's Terraform module: a role that trusts
# s3dest's intermediate role with your workspace ID as External ID, allowed to PutObject (and set the
# object ACL) under segment-logs/ of your bucket, and optionally to use your KMS key.

variable "workspace_id" {
  description = "Your s3dest workspace ID (GET /workspace): the External ID."
  type        = string
}
variable "bucket_name" {
  description = "The bucket that receives the logs (its name, not its URI)."
  type        = string
}
variable "intermediate_role_arn" {
  description = "s3dest's intermediate role ARN (the operator of your s3dest installation gives it)."
  type        = string
}
variable "kms_key_arn" {
  description = "ARN of the bucket's KMS key, if it uses SSE-KMS; empty otherwise."
  type        = string
  default     = ""
}

data "aws_iam_policy_document" "trust" {
  version = "2012-10-17"
  statement {
    actions = ["sts:AssumeRole"]
    effect  = "Allow"
    principals {
      type        = "AWS"
      identifiers = [var.intermediate_role_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [var.workspace_id]
    }
  }
}

resource "aws_iam_role" "s3dest" {
  name               = "S3destAWSS3Role"
  description        = "IAM role used by s3dest (AWS S3 destination)"
  assume_role_policy = data.aws_iam_policy_document.trust.json
}

data "aws_iam_policy_document" "put" {
  version = "2012-10-17"
  statement {
    sid       = "PutObjectsInBucket"
    actions   = ["s3:PutObject", "s3:PutObjectAcl"]
    resources = ["arn:aws:s3:::${var.bucket_name}/segment-logs/*"]
    effect    = "Allow"
  }
}

resource "aws_iam_policy" "put" {
  name        = "S3destAWSS3Policy"
  description = "Gives s3dest access to segment-logs/ in your bucket"
  policy      = data.aws_iam_policy_document.put.json
}

resource "aws_iam_role_policy_attachment" "put" {
  role       = aws_iam_role.s3dest.name
  policy_arn = aws_iam_policy.put.arn
}

data "aws_iam_policy_document" "kms" {
  count   = var.kms_key_arn == "" ? 0 : 1
  version = "2012-10-17"
  statement {
    sid       = "AllowKMS"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
    effect    = "Allow"
  }
}

resource "aws_iam_policy" "kms" {
  count  = var.kms_key_arn == "" ? 0 : 1
  name   = "S3destAWSS3KMSPolicy"
  policy = data.aws_iam_policy_document.kms[0].json
}

resource "aws_iam_role_policy_attachment" "kms" {
  count      = var.kms_key_arn == "" ? 0 : 1
  role       = aws_iam_role.s3dest.name
  policy_arn = aws_iam_policy.kms[0].arn
}

output "role_arn" {
  description = "Enter this as the destination's IAM Role ARN setting."
  value       = aws_iam_role.s3dest.arn
}
