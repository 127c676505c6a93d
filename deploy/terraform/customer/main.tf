# The customer side of the AWS S3 (IAM role) destination, as the reference's Terraform module: a role that
# trusts s3dest's intermediate role with your workspace ID as External ID, allowed to PutObject (and set the
# object ACL) under segment-logs/ of your bucket (or of PREFIX/ in it), and optionally to use your KMS key.
# The policies are the JSON `s3dest workspace` prints (deploy/deploytest proves it).

locals {
  key_prefix = var.prefix == "" ? "" : "${var.prefix}/"

  trust_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = ""
      Effect    = "Allow"
      Principal = { AWS = var.intermediate_role_arn }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "sts:ExternalId" = var.workspace_id } }
    }]
  })

  permission_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "PutObjectsInBucket"
      Effect   = "Allow"
      Action   = ["s3:PutObject", "s3:PutObjectAcl"]
      Resource = "arn:${var.partition}:s3:::${var.bucket}/${local.key_prefix}segment-logs/*"
    }]
  })

  kms_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "AllowKMS"
      Effect   = "Allow"
      Action   = ["kms:GenerateDataKey", "kms:Decrypt"]
      Resource = var.kms_key_arn
    }]
  })
}

resource "aws_iam_role" "s3dest" {
  name               = var.name
  description        = "IAM role used by s3dest (AWS S3 destination)"
  assume_role_policy = local.trust_policy
  tags               = var.tags
}

resource "aws_iam_policy" "put" {
  name        = "${var.name}Policy"
  description = "Gives s3dest access to segment-logs/ in ${var.bucket}"
  policy      = local.permission_policy
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "put" {
  role       = aws_iam_role.s3dest.name
  policy_arn = aws_iam_policy.put.arn
}

resource "aws_iam_policy" "kms" {
  count       = var.kms_key_arn == "" ? 0 : 1
  name        = "${var.name}KMSPolicy"
  description = "Gives s3dest access to the KMS key of ${var.bucket}"
  policy      = local.kms_policy
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "kms" {
  count      = var.kms_key_arn == "" ? 0 : 1
  role       = aws_iam_role.s3dest.name
  policy_arn = aws_iam_policy.kms[0].arn
}
