-- 019: users, access keys and identity policies are managed from the console
-- with IAM actions (iam:ListUsers, iam:CreateAccessKey, ...). Administrators
-- created with the built-in policy keep being able to do everything pierctl
-- can: their unchanged AdministratorAccess policy now allows iam:* as well.
-- A policy anyone edited is left as it is.
UPDATE identity_policies
   SET document = '{"Version":"2012-10-17","Statement":[{"Sid":"AdministratorAccess","Effect":"Allow","Action":["ecr:*","secretsmanager:*","iam:*"],"Resource":"*"}]}',
       updated_at = now()
 WHERE name = 'AdministratorAccess'
   AND document = '{"Version":"2012-10-17","Statement":[{"Sid":"AdministratorAccess","Effect":"Allow","Action":["ecr:*","secretsmanager:*"],"Resource":"*"}]}';
