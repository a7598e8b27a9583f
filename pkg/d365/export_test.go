package d365

// AttachmentName exposes attachmentName to the external tests.
var AttachmentName = attachmentName
