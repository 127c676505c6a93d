output "intermediate_role_arn" {
  description = "Our intermediate role: the chart's serviceAccount.roleArn and settings.intermediateRoleArn, and what customers' roles trust."
  value       = aws_iam_role.intermediate.arn
}

output "staging_bucket" {
  description = "The staging bucket: the chart's settings.stagingBucket."
  value       = aws_s3_bucket.staging.id
}
