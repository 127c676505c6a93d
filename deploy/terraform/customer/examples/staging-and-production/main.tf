# The reference's "multiple sources per environment": one role for the staging bucket and one for the
# production bucket, in one account. terraform init && terraform apply -var workspace_id=… -var intermediate_role_arn=…

variable "workspace_id" {
  description = "Your s3dest workspace ID (s3dest workspace prints it)."
  type        = string
}

variable "intermediate_role_arn" {
  description = "The s3dest installation's intermediate role ARN."
  type        = string
}

provider "aws" {
  region = "us-west-2"
}

module "staging" {
  source                = "../.."
  name                  = "S3destStagingRole"
  workspace_id          = var.workspace_id
  intermediate_role_arn = var.intermediate_role_arn
  bucket                = "acme-staging-events"
  tags                  = { environment = "staging" }
}

module "production" {
  source                = "../.."
  name                  = "S3destProductionRole"
  workspace_id          = var.workspace_id
  intermediate_role_arn = var.intermediate_role_arn
  bucket                = "acme-production-events"
  prefix                = "segment"
  kms_key_arn           = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  tags                  = { environment = "production" }
}

output "staging_role_arn" {
  description = "The staging destinations' IAM Role ARN."
  value       = module.staging.role_arn
}

output "production_role_arn" {
  description = "The production destinations' IAM Role ARN."
  value       = module.production.role_arn
}
