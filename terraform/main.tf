# Convergence Data Pipeline on Google Cloud: the platform once, and one tenant module per folder of tenant_configs/.

locals {
  tenant_configs_dir = coalesce(var.tenant_configs_dir, "${path.root}/../tenant_configs")
}

# The names the code uses and the tenants of tenant_configs/ (provider-less: tests evaluate it).
module "contract" {
  source               = "./modules/contract"
  tenant_configs_dir   = local.tenant_configs_dir
  maintenance_schedule = var.maintenance_schedule
}

module "platform" {
  source               = "./modules/platform"
  project_id           = var.project_id
  region               = var.region
  firestore_location   = var.firestore_location
  bigquery_location    = var.bigquery_location
  tenant_configs_dir   = local.tenant_configs_dir
  source_object        = var.source_object
  maintenance_schedule = var.maintenance_schedule
  max_instances        = var.max_instances
  api_public           = var.api_public
  api_invokers         = var.api_invokers
  admin_token_sealed   = var.admin_token_sealed
  deletion_protection  = var.deletion_protection

  notification_channels = var.notification_channels
}

module "tenant" {
  source   = "./modules/tenant"
  for_each = module.contract.tenant_ids

  project_id                = var.project_id
  region                    = var.region
  tenant_id                 = each.key
  tenant_configs_dir        = local.tenant_configs_dir
  bigquery_location         = var.bigquery_location
  bigquery_kms_key_id       = module.platform.kms_bigquery_key_id
  schedule_ticks_topic_id   = module.platform.schedule_ticks_topic_id
  function_service_accounts = module.platform.function_service_accounts
  deletion_protection       = var.deletion_protection
}
