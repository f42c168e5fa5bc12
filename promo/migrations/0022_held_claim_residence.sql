-- R-X13: a claim held by the redemption (R-X12) keeps where the customer said they live, so
-- that the approval chooses the same sponsor, law and support contact as the request would
-- have. NULL: not stated (a claim sent with a receipt, or one held before this migration):
-- the country of purchase, as on the redeem form.
ALTER TABLE review_claims ADD COLUMN residence_country TEXT;
