# MySQL (RDS) and MongoDB-compatible DocumentDB in the private subnets, each
# behind a security group that admits only the EKS cluster's nodes and pods.

resource "random_password" "mysql" {
  length = 32
  # RDS refuses /, @, " and spaces in a master password.
  override_special = "!#%*()-_=+[]{}<>:?"
}

resource "random_password" "documentdb" {
  length           = 32
  override_special = "!#%*()-_=+[]{}<>:?"
}

resource "aws_db_subnet_group" "mysql" {
  name       = "${local.short_prefix}-mysql"
  subnet_ids = aws_subnet.private[*].id
  tags       = local.tags
}

resource "aws_security_group" "mysql" {
  name        = "${local.short_prefix}-mysql"
  description = "MySQL of the ${local.prefix} cluster: reachable from the cluster only"
  vpc_id      = aws_vpc.cluster.id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "mysql_from_cluster" {
  security_group_id            = aws_security_group.mysql.id
  description                  = "MySQL from the EKS cluster"
  ip_protocol                  = "tcp"
  from_port                    = 3306
  to_port                      = 3306
  referenced_security_group_id = aws_eks_cluster.cluster.vpc_config[0].cluster_security_group_id
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${local.short_prefix}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_parameter_group" "mysql" {
  name   = "${local.short_prefix}-mysql"
  family = "mysql${var.mysql_engine_version}"
  tags   = local.tags

  # Connections must use TLS.
  parameter {
    name  = "require_secure_transport"
    value = "1"
  }
}

resource "aws_db_instance" "mysql" {
  identifier                            = "${local.short_prefix}-mysql"
  engine                                = "mysql"
  engine_version                        = var.mysql_engine_version
  instance_class                        = var.mysql_instance_class
  allocated_storage                     = var.mysql_allocated_storage
  max_allocated_storage                 = var.mysql_allocated_storage * 10
  storage_type                          = "gp3"
  storage_encrypted                     = true
  kms_key_id                            = aws_kms_key.cluster.arn
  username                              = "phdadmin"
  password                              = random_password.mysql.result
  db_subnet_group_name                  = aws_db_subnet_group.mysql.name
  vpc_security_group_ids                = [aws_security_group.mysql.id]
  parameter_group_name                  = aws_db_parameter_group.mysql.name
  publicly_accessible                   = false
  multi_az                              = var.high_availability
  backup_retention_period               = var.backup_retention_days
  copy_tags_to_snapshot                 = true
  deletion_protection                   = true
  final_snapshot_identifier             = "${local.short_prefix}-mysql-final"
  auto_minor_version_upgrade            = true
  iam_database_authentication_enabled   = true
  enabled_cloudwatch_logs_exports       = ["audit", "error", "slowquery"]
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.cluster.arn
  performance_insights_retention_period = 7
  tags                                  = local.tags

  depends_on = [aws_iam_role_policy_attachment.rds_monitoring]
}

resource "aws_docdb_subnet_group" "documentdb" {
  name       = "${local.short_prefix}-documentdb"
  subnet_ids = aws_subnet.private[*].id
  tags       = local.tags
}

resource "aws_security_group" "documentdb" {
  name        = "${local.short_prefix}-documentdb"
  description = "DocumentDB of the ${local.prefix} cluster: reachable from the cluster only"
  vpc_id      = aws_vpc.cluster.id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "documentdb_from_cluster" {
  security_group_id            = aws_security_group.documentdb.id
  description                  = "MongoDB protocol from the EKS cluster"
  ip_protocol                  = "tcp"
  from_port                    = 27017
  to_port                      = 27017
  referenced_security_group_id = aws_eks_cluster.cluster.vpc_config[0].cluster_security_group_id
}

resource "aws_docdb_cluster_parameter_group" "documentdb" {
  name   = "${local.short_prefix}-documentdb"
  family = "docdb5.0"
  tags   = local.tags

  parameter {
    name  = "tls"
    value = "enabled"
  }

  parameter {
    name  = "audit_logs"
    value = "enabled"
  }
}

resource "aws_docdb_cluster" "documentdb" {
  cluster_identifier              = "${local.short_prefix}-documentdb"
  engine                          = "docdb"
  engine_version                  = "5.0.0"
  master_username                 = "phdadmin"
  master_password                 = random_password.documentdb.result
  db_subnet_group_name            = aws_docdb_subnet_group.documentdb.name
  vpc_security_group_ids          = [aws_security_group.documentdb.id]
  db_cluster_parameter_group_name = aws_docdb_cluster_parameter_group.documentdb.name
  storage_encrypted               = true
  kms_key_id                      = aws_kms_key.cluster.arn
  backup_retention_period         = var.backup_retention_days
  deletion_protection             = true
  final_snapshot_identifier       = "${local.short_prefix}-documentdb-final"
  enabled_cloudwatch_logs_exports = ["audit", "profiler"]
  tags                            = local.tags
}

resource "aws_docdb_cluster_instance" "documentdb" {
  count                      = var.documentdb_instance_count
  identifier                 = "${local.short_prefix}-documentdb-${count.index}"
  cluster_identifier         = aws_docdb_cluster.documentdb.id
  instance_class             = var.documentdb_instance_class
  auto_minor_version_upgrade = true
  tags                       = local.tags
}
