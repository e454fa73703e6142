output "kubeconfig" {
  description = "Kubeconfig of the cluster; it runs `aws eks get-token` for each use, so it needs the AWS CLI and credentials."
  value       = local.kubeconfig
  sensitive   = true
}

output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.cluster.name
}

output "mysql_host" {
  description = "Host of the RDS MySQL server (PHD_MYSQL_HOST)."
  value       = aws_db_instance.mysql.address
}

output "mysql_port" {
  description = "Port of the RDS MySQL server (PHD_MYSQL_PORT)."
  value       = aws_db_instance.mysql.port
}

output "mysql_root_user" {
  description = "Administrative MySQL user (PHD_MYSQL_ROOT_USER)."
  value       = aws_db_instance.mysql.username
}

output "mysql_root_password" {
  description = "Password of the administrative MySQL user (PHD_MYSQL_ROOT_PASSWORD)."
  value       = random_password.mysql.result
  sensitive   = true
}

output "mongodb_host" {
  description = "Endpoint of the DocumentDB cluster (PHD_MONGODB_HOST)."
  value       = aws_docdb_cluster.documentdb.endpoint
}

output "mongodb_port" {
  description = "Port of the DocumentDB cluster (PHD_MONGODB_PORT)."
  value       = aws_docdb_cluster.documentdb.port
}

output "mongodb_root_user" {
  description = "Administrative DocumentDB user."
  value       = aws_docdb_cluster.documentdb.master_username
}

output "mongodb_root_password" {
  description = "Password of the administrative DocumentDB user."
  value       = random_password.documentdb.result
  sensitive   = true
}

output "backups_bucket" {
  description = "Name of the S3 bucket for backups."
  value       = aws_s3_bucket.backups.bucket
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the cluster's secrets, databases, logs and backups."
  value       = aws_kms_key.cluster.arn
}

output "state_bucket" {
  description = "Name of the state bucket the module manages, or null."
  value       = one(aws_s3_bucket.state[*].bucket)
}
