output "kubeconfig" {
  description = "Kubeconfig of the cluster (its token is short-lived; `kubectl phd kubeconfig --save` after a refresh renews it)."
  value       = digitalocean_kubernetes_cluster.cluster.kube_config[0].raw_config
  sensitive   = true
}

output "cluster_name" {
  description = "Name of the Kubernetes cluster."
  value       = digitalocean_kubernetes_cluster.cluster.name
}

output "cluster_id" {
  description = "ID of the DOKS cluster."
  value       = digitalocean_kubernetes_cluster.cluster.id
}

output "mysql_host" {
  description = "Private host of the MySQL cluster (PHD_MYSQL_HOST)."
  value       = digitalocean_database_cluster.mysql.private_host
}

output "mysql_port" {
  description = "Port of the MySQL cluster (PHD_MYSQL_PORT)."
  value       = digitalocean_database_cluster.mysql.port
}

output "mysql_root_user" {
  description = "Administrative MySQL user (PHD_MYSQL_ROOT_USER)."
  value       = digitalocean_database_cluster.mysql.user
}

output "mysql_root_password" {
  description = "Password of the administrative MySQL user (PHD_MYSQL_ROOT_PASSWORD)."
  value       = digitalocean_database_cluster.mysql.password
  sensitive   = true
}

output "mongodb_host" {
  description = "Private host of the MongoDB cluster (PHD_MONGODB_HOST)."
  value       = digitalocean_database_cluster.mongodb.private_host
}

output "mongodb_port" {
  description = "Port of the MongoDB cluster (PHD_MONGODB_PORT)."
  value       = digitalocean_database_cluster.mongodb.port
}

output "mongodb_cluster_id" {
  description = "ID of the MongoDB cluster, for users and databases made through the DigitalOcean API (PHD_MONGODB_CLUSTER_ID)."
  value       = digitalocean_database_cluster.mongodb.id
}

output "backups_bucket" {
  description = "Name of the Spaces bucket for backups."
  value       = digitalocean_spaces_bucket.backups.name
}

output "state_bucket" {
  description = "Name of the state bucket the module manages, or null."
  value       = one(digitalocean_spaces_bucket.state[*].name)
}
