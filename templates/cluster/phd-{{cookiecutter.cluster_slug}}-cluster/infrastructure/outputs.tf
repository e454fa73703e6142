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
