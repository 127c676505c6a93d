variable "prefix" {
  description = "Prefix of every name this module creates (the role, its policy, the staging bucket), so that several installations share an account, e.g. acme-s3dest."
  type        = string
  default     = "s3dest"
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}$", var.prefix))
    error_message = "prefix: must be 2 to 31 of a-z 0-9 - (it starts the bucket's name)."
  }
}

variable "partition" {
  description = "The AWS partition: aws, aws-cn or aws-us-gov."
  type        = string
  default     = "aws"
  validation {
    condition     = contains(["aws", "aws-cn", "aws-us-gov"], var.partition)
    error_message = "partition: must be aws, aws-cn or aws-us-gov."
  }
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (IRSA), e.g. arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE."
  type        = string
}

variable "oidc_provider_url" {
  description = "The OIDC provider's issuer without https://, e.g. oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE."
  type        = string
  validation {
    condition     = !startswith(var.oidc_provider_url, "https://")
    error_message = "oidc_provider_url: leave out https://."
  }
}

variable "namespace" {
  description = "The Kubernetes namespace of the s3dest release."
  type        = string
  default     = "s3dest"
}

variable "service_account" {
  description = "The Helm chart's ServiceAccount name (the release's full name, e.g. s3dest)."
  type        = string
  default     = "s3dest"
}

variable "staging_retention_days" {
  description = "Days staged files are kept: at least the chart's settings.retention plus 1h, rounded up (168h: 8 days)."
  type        = number
  default     = 8
  validation {
    condition     = var.staging_retention_days >= 1 && var.staging_retention_days <= 91
    error_message = "staging_retention_days: must be 1 to 91 (retention is 1h to 2160h)."
  }
}

variable "staging_kms_key_arn" {
  description = "KMS key of the staging bucket's default encryption; empty uses SSE-S3 (AES256)."
  type        = string
  default     = ""
}
