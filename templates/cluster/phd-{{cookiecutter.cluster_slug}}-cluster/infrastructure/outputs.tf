output "kubeconfig" {
  description = "Kubeconfig of the cluster, read by `kubectl phd kubeconfig` and by kubectl phd inside this repository."
  value       = module.cluster.kubeconfig
  sensitive   = true
}

output "cluster_name" {
  description = "Name of the Kubernetes cluster."
  value       = module.cluster.cluster_name
}

output "mysql_host" {
  description = "Host of the MySQL server the instances use (PHD_MYSQL_HOST)."
  value       = module.cluster.mysql_host
}

output "mysql_port" {
  description = "Port of the MySQL server (PHD_MYSQL_PORT)."
  value       = module.cluster.mysql_port
}

output "mysql_root_user" {
  description = "Administrative MySQL user (PHD_MYSQL_ROOT_USER)."
  value       = module.cluster.mysql_root_user
}

output "mysql_root_password" {
  description = "Password of the administrative MySQL user (PHD_MYSQL_ROOT_PASSWORD)."
  value       = module.cluster.mysql_root_password
  sensitive   = true
}

output "mongodb_host" {
  description = "Host of the MongoDB server the instances use (PHD_MONGODB_HOST)."
  value       = module.cluster.mongodb_host
}

output "mongodb_port" {
  description = "Port of the MongoDB server (PHD_MONGODB_PORT)."
  value       = module.cluster.mongodb_port
}
{%- if cookiecutter.provider == 'digitalocean' %}

output "cluster_id" {
  description = "ID of the Kubernetes cluster."
  value       = module.cluster.cluster_id
}

output "mongodb_cluster_id" {
  description = "ID of the managed MongoDB cluster, on which the provisioning workflows make each instance's database and user (PHD_MONGODB_CLUSTER_ID)."
  value       = module.cluster.mongodb_cluster_id
}
{%- else %}

output "mongodb_root_user" {
  description = "Administrative user of the DocumentDB cluster."
  value       = module.cluster.mongodb_root_user
}

output "mongodb_root_password" {
  description = "Password of the administrative DocumentDB user."
  value       = module.cluster.mongodb_root_password
  sensitive   = true
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the cluster's Secrets, databases and buckets."
  value       = module.cluster.kms_key_arn
}
{%- endif %}

output "backups_bucket" {
  description = "Bucket of the instances' backups."
  value       = module.cluster.backups_bucket
}

output "state_bucket" {
  description = "Bucket of this infrastructure's OpenTofu state."
  value       = module.cluster.state_bucket
}
