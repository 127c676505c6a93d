output "role_arn" {
  description = "Enter this as the destination's IAM Role ARN setting."
  value       = aws_iam_role.s3dest.arn
}

output "role_name" {
  description = "The role's name."
  value       = aws_iam_role.s3dest.name
}

output "bucket_setting" {
  description = "Enter this as the destination's Bucket Name setting: the bucket, and the prefix if any."
  value       = var.prefix == "" ? var.bucket : "${var.bucket}/${var.prefix}"
}
