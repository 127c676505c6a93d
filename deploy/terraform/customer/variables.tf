variable "name" {
  description = "Name of the role, and the prefix of its policies' names. Use one module per environment (e.g. S3destStagingRole and S3destProductionRole) for the reference's separate staging and production roles."
  type        = string
  default     = "S3destAWSS3Role"
  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,52}$", var.name))
    error_message = "name: must be 1 to 52 of A-Z a-z 0-9 + = , . @ _ - (IAM allows 64; the policies append up to 12)."
  }
}

variable "workspace_id" {
  description = "Your s3dest workspace ID (`s3dest workspace`, GET /workspace): the External ID the trust policy requires."
  type        = string
  validation {
    condition     = length(var.workspace_id) > 0
    error_message = "workspace_id: must be set (s3dest workspace prints it)."
  }
}

variable "intermediate_role_arn" {
  description = "The s3dest installation's intermediate role ARN, which your role trusts (its operator gives it; deploy/terraform/operator's intermediate_role_arn output)."
  type        = string
  validation {
    condition     = can(regex("^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/.+$", var.intermediate_role_arn))
    error_message = "intermediate_role_arn: must be an IAM role ARN such as arn:aws:iam::123456789012:role/s3dest-intermediate."
  }
}

variable "bucket" {
  description = "The bucket that receives the files: its name, not its URI."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket))
    error_message = "bucket: must be an S3 bucket name (3 to 63 of a-z 0-9 . -), not a URI."
  }
}

variable "prefix" {
  description = "The folder in the bucket the destination writes under, as in the destination's bucket setting BUCKET/PREFIX (empty: the bucket's root). Files land under PREFIX/segment-logs/."
  type        = string
  default     = ""
  validation {
    condition     = !startswith(var.prefix, "/") && !endswith(var.prefix, "/")
    error_message = "prefix: must not start or end with /, such as team-a/events."
  }
}

variable "partition" {
  description = "The AWS partition of the bucket: aws, aws-cn or aws-us-gov."
  type        = string
  default     = "aws"
  validation {
    condition     = contains(["aws", "aws-cn", "aws-us-gov"], var.partition)
    error_message = "partition: must be aws, aws-cn or aws-us-gov."
  }
}

variable "kms_key_arn" {
  description = "ARN of the bucket's KMS key when it uses SSE-KMS; empty otherwise (no KMS policy is created)."
  type        = string
  default     = ""
}

variable "tags" {
  description = "Tags of the role and its policies."
  type        = map(string)
  default     = {}
}
