"""OpenZiti Edge Management API resources: CAs (verified), ext-JWT signers, auth policies,
identities, edge routers and policies as Pulumi dynamic providers."""
