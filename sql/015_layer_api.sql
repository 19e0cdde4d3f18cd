-- 015: the control plane's layer upload (InitiateLayerUpload, UploadLayerPart,
-- CompleteLayerUpload) shares the registry's upload sessions. ECR refuses to
-- complete a layer one of whose parts, other than the last, was shorter than
-- 5 MiB (LayerPartTooSmallException): a session remembers where the first
-- such short part ended (NULL: none yet); bytes after it mean it was not the
-- last. Nodes of the previous release never write the column.
ALTER TABLE uploads ADD COLUMN short_part_end bigint CHECK (short_part_end >= 0);
