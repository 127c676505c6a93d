# The operator side for an EKS cluster whose OIDC provider exists (eksctl utils associate-iam-oidc-provider).
# terraform init && terraform apply, then pass the outputs to the Helm chart (deploy/helm/s3dest/README.md).

provider "aws" {
  region = "us-west-2"
}

module "s3dest" {
  source            = "../.."
  prefix            = "acme-s3dest"
  oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
  oidc_provider_url = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
  namespace         = "s3dest"
  service_account   = "s3dest"
  tags              = { team = "data-platform" }
}

output "intermediate_role_arn" {
  description = "Set as serviceAccount.roleArn and settings.intermediateRoleArn."
  value       = module.s3dest.intermediate_role_arn
}

output "staging_bucket" {
  description = "Set as settings.stagingBucket."
  value       = module.s3dest.staging_bucket
}
