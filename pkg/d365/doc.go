// Package d365 is a client for the Dynamics 365 Finance & Operations (F&O)
// recurring-integration API (enqueue, dequeue, download, ack, jobstatus), the
// DataManagementDefinitionGroups OData actions that follow an import to its
// final status, and the Data management package API:
//
//	https://learn.microsoft.com/en-us/dynamics365/fin-ops-core/dev-itpro/data-entities/recurring-integrations
//	https://learn.microsoft.com/en-us/dynamics365/fin-ops-core/dev-itpro/data-entities/data-management-api
//
// The bearer token is only ever sent to the configured F&O host: a
// DownloadLocation on any other host is refused before a token is fetched,
// redirects are never followed, and blob (SAS) URLs are called without it.
//
// The package has no AWS dependency.
package d365
