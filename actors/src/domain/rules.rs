//! Tier and badge rules, and the decisions they drive.

use crate::event::Benefits;
use std::collections::BTreeMap;

/// One tier: its milestone (cumulative trading volume) and what an upgrade into it consumes.
#[derive(Debug, Clone, PartialEq)]
pub struct TierRule {
    /// 1, 2, 3, …: tier `n + 1` is the upgrade of tier `n`.
    pub id: u32,
    pub name: String,
    pub milestone: f64,
    pub image_url: String,
    pub benefits: Benefits,
    /// Activated badges (with `requiredForTier` equal to this tier) an upgrade into this tier
    /// needs and consumes. An unlock straight into a tier needs them too, without consuming.
    pub badges_required: u32,
}

/// A badge users can earn and activate.
#[derive(Debug, Clone, PartialEq)]
pub struct BadgeRule {
    pub id: String,
    pub name: String,
    pub description: String,
    pub image_url: String,
    pub required_for_tier: u32,
}

/// The whole rule set, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainRules {
    tiers: Vec<TierRule>,
    badges: BTreeMap<String, BadgeRule>,
}

/// A rule set that cannot work; `key` names the offending configuration entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct RulesError {
    pub key: String,
    pub reason: String,
}

impl DomainRules {
    /// Checks that tier ids run 1, 2, 3, … with strictly increasing milestones, and that every
    /// badge names an existing tier.
    pub fn new(tiers: Vec<TierRule>, badges: Vec<BadgeRule>) -> Result<Self, RulesError> {
        let err = |key: String, reason: &str| RulesError {
            key,
            reason: reason.to_owned(),
        };
        if tiers.is_empty() {
            return Err(err("domain.tiers".into(), "at least one tier is required"));
        }
        for (i, tier) in tiers.iter().enumerate() {
            let key = format!("domain.tiers[{i}]");
            if tier.id as usize != i + 1 {
                return Err(err(key, "tier ids must be 1, 2, 3, … in order"));
            }
            if !(tier.milestone.is_finite() && tier.milestone > 0.0) {
                return Err(err(key, "milestone must be a positive number"));
            }
            if i > 0 && tier.milestone <= tiers[i - 1].milestone {
                return Err(err(key, "milestones must be strictly increasing"));
            }
            if tier.name.trim().is_empty() {
                return Err(err(key, "name must not be empty"));
            }
        }
        let mut by_id = BTreeMap::new();
        for (i, badge) in badges.into_iter().enumerate() {
            let key = format!("domain.badges[{i}]");
            if badge.id.trim().is_empty() {
                return Err(err(key, "id must not be empty"));
            }
            if badge.required_for_tier == 0 || badge.required_for_tier as usize > tiers.len() {
                return Err(err(key, "requiredForTier names no configured tier"));
            }
            if by_id.insert(badge.id.clone(), badge).is_some() {
                return Err(err(key, "duplicate badge id"));
            }
        }
        for (i, tier) in tiers.iter().enumerate() {
            let available = by_id
                .values()
                .filter(|b| b.required_for_tier == tier.id)
                .count();
            if (tier.badges_required as usize) > available {
                return Err(err(
                    format!("domain.tiers[{i}]"),
                    "badges_required exceeds the badges configured for this tier",
                ));
            }
        }
        Ok(DomainRules {
            tiers,
            badges: by_id,
        })
    }

    pub fn tiers(&self) -> &[TierRule] {
        &self.tiers
    }

    pub fn tier(&self, id: u32) -> Option<&TierRule> {
        self.tiers.get((id as usize).checked_sub(1)?)
    }

    pub fn badge(&self, id: &str) -> Option<&BadgeRule> {
        self.badges.get(id)
    }

    /// `(milestone, tier id)` for every milestone `previous < m <= current` crosses upward.
    pub fn milestones_crossed(&self, previous: f64, current: f64) -> Vec<(f64, u32)> {
        self.tiers
            .iter()
            .filter(|t| previous < t.milestone && t.milestone <= current)
            .map(|t| (t.milestone, t.id))
            .collect()
    }

    /// Tiers the user qualifies for: enough volume, and at least `badges_required` qualifying
    /// (activated or consumed) badges meant for that tier.
    pub fn qualified_tiers<'a>(
        &self,
        volume: f64,
        activated_badges: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Vec<u32> {
        self.tiers
            .iter()
            .filter(|t| volume >= t.milestone)
            .filter(|t| {
                self.activated_for(t.id, activated_badges.clone()).len()
                    >= t.badges_required as usize
            })
            .map(|t| t.id)
            .collect()
    }

    /// The activated badges that count toward `tier`, in id order.
    pub fn activated_for<'a>(
        &self,
        tier: u32,
        activated_badges: impl IntoIterator<Item = &'a str>,
    ) -> Vec<String> {
        let mut ids: Vec<String> = activated_badges
            .into_iter()
            .filter(|id| self.badge(id).is_some_and(|b| b.required_for_tier == tier))
            .map(str::to_owned)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Why the user cannot unlock `tier` now, if they cannot.
    pub fn check_unlock<'a>(
        &self,
        tier: u32,
        volume: f64,
        activated_badges: impl IntoIterator<Item = &'a str> + Clone,
        current_nft_tier: Option<u32>,
    ) -> Result<&TierRule, DomainError> {
        let rule = self.tier(tier).ok_or(DomainError::UnknownTier(tier))?;
        if current_nft_tier.is_some() {
            return Err(DomainError::AlreadyHoldsNft);
        }
        if !self
            .qualified_tiers(volume, activated_badges)
            .contains(&tier)
        {
            return Err(DomainError::NotQualified(tier));
        }
        Ok(rule)
    }

    /// The badges an upgrade into `target` consumes (from `activated_badges`), or why it cannot
    /// happen now.
    pub fn check_upgrade<'a>(
        &self,
        target: u32,
        volume: f64,
        qualifying_badges: impl IntoIterator<Item = &'a str> + Clone,
        activated_badges: impl IntoIterator<Item = &'a str>,
        current_nft_tier: Option<u32>,
    ) -> Result<(&TierRule, Vec<String>), DomainError> {
        let rule = self.tier(target).ok_or(DomainError::UnknownTier(target))?;
        let current = current_nft_tier.ok_or(DomainError::NoNftToUpgrade)?;
        if target != current + 1 {
            return Err(DomainError::WrongTier {
                current,
                requested: target,
            });
        }
        if !self
            .qualified_tiers(volume, qualifying_badges)
            .contains(&target)
        {
            return Err(DomainError::NotQualified(target));
        }
        let mut consumed = self.activated_for(target, activated_badges);
        if consumed.len() < rule.badges_required as usize {
            return Err(DomainError::NotQualified(target));
        }
        consumed.truncate(rule.badges_required as usize);
        Ok((rule, consumed))
    }
}

/// Why a domain request is refused; each maps to a 422 with its own `error_code`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    #[error("tier {0} does not exist")]
    UnknownTier(u32),
    #[error("badge `{0}` does not exist")]
    UnknownBadge(String),
    #[error("not qualified for tier {0}")]
    NotQualified(u32),
    #[error("the user already holds an NFT; upgrade it instead")]
    AlreadyHoldsNft,
    #[error("the user holds no NFT to upgrade")]
    NoNftToUpgrade,
    #[error("an upgrade from tier {current} goes to tier {}, not {requested}", current + 1)]
    WrongTier { current: u32, requested: u32 },
    #[error("trading volume may not go down (from {previous} to {requested})")]
    VolumeDecreased { previous: f64, requested: f64 },
    #[error("badge `{0}` is not earned, or already activated or consumed")]
    BadgeNotActivatable(String),
    #[error("badge `{0}` was already earned by this user")]
    BadgeAlreadyEarned(String),
    #[error("operation {0} is still running for this user; wait for it to end")]
    FlowInProgress(String),
}

impl DomainError {
    pub fn error_code(&self) -> &'static str {
        match self {
            DomainError::UnknownTier(_) => "UNKNOWN_TIER",
            DomainError::UnknownBadge(_) => "UNKNOWN_BADGE",
            DomainError::NotQualified(_) => "NOT_QUALIFIED",
            DomainError::AlreadyHoldsNft => "ALREADY_HOLDS_NFT",
            DomainError::NoNftToUpgrade => "NO_NFT_TO_UPGRADE",
            DomainError::WrongTier { .. } => "WRONG_TIER",
            DomainError::VolumeDecreased { .. } => "VOLUME_DECREASED",
            DomainError::BadgeNotActivatable(_) => "BADGE_NOT_ACTIVATABLE",
            DomainError::BadgeAlreadyEarned(_) => "BADGE_ALREADY_EARNED",
            DomainError::FlowInProgress(_) => "FLOW_IN_PROGRESS",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(id: u32, milestone: f64, badges_required: u32) -> TierRule {
        TierRule {
            id,
            name: format!("T{id}"),
            milestone,
            image_url: format!("https://example.invalid/t{id}.png"),
            benefits: Benefits {
                trading_fee_reduction: "5%".into(),
                ai_agent_weekly_uses: 10,
                priority_support: false,
            },
            badges_required,
        }
    }

    fn badge(id: &str, tier: u32) -> BadgeRule {
        BadgeRule {
            id: id.into(),
            name: id.into(),
            description: id.into(),
            image_url: String::new(),
            required_for_tier: tier,
        }
    }

    fn rules() -> DomainRules {
        DomainRules::new(
            vec![
                tier(1, 100_000.0, 0),
                tier(2, 250_000.0, 1),
                tier(3, 500_000.0, 2),
            ],
            vec![badge("a", 2), badge("b", 3), badge("c", 3)],
        )
        .expect("valid")
    }

    #[test]
    fn milestones_crossed_going_up() {
        let r = rules();
        assert_eq!(
            r.milestones_crossed(90_000.0, 260_000.0),
            vec![(100_000.0, 1), (250_000.0, 2)]
        );
        assert!(r.milestones_crossed(260_000.0, 270_000.0).is_empty());
        assert_eq!(r.milestones_crossed(0.0, 100_000.0), vec![(100_000.0, 1)]);
    }

    #[test]
    fn qualification_needs_volume_and_activated_badges() {
        let r = rules();
        assert_eq!(r.qualified_tiers(260_000.0, []), vec![1]);
        assert_eq!(r.qualified_tiers(260_000.0, ["a"]), vec![1, 2]);
        assert_eq!(r.qualified_tiers(600_000.0, ["a", "b"]), vec![1, 2]);
        assert_eq!(r.qualified_tiers(600_000.0, ["a", "b", "c"]), vec![1, 2, 3]);
    }

    #[test]
    fn unlock_and_upgrade_say_why_not() {
        let r = rules();
        assert!(r.check_unlock(1, 150_000.0, [], None).is_ok());
        assert_eq!(
            r.check_unlock(2, 150_000.0, [], None).err(),
            Some(DomainError::NotQualified(2))
        );
        assert_eq!(
            r.check_unlock(1, 150_000.0, [], Some(1)).err(),
            Some(DomainError::AlreadyHoldsNft)
        );
        assert_eq!(
            r.check_unlock(9, 150_000.0, [], None).err(),
            Some(DomainError::UnknownTier(9))
        );

        let (rule, consumed) = r
            .check_upgrade(2, 300_000.0, ["a"], ["a"], Some(1))
            .expect("ok");
        assert_eq!((rule.id, consumed), (2, vec!["a".to_owned()]));
        assert_eq!(
            r.check_upgrade(2, 300_000.0, ["a"], ["a"], None).err(),
            Some(DomainError::NoNftToUpgrade)
        );
        assert_eq!(
            r.check_upgrade(3, 900_000.0, ["a", "b", "c"], ["a", "b", "c"], Some(1))
                .err(),
            Some(DomainError::WrongTier {
                current: 1,
                requested: 3
            })
        );
        assert_eq!(
            r.check_upgrade(2, 300_000.0, [], [], Some(1)).err(),
            Some(DomainError::NotQualified(2))
        );
        // Consumed badges keep the tier qualified but cannot be consumed again.
        assert_eq!(r.qualified_tiers(900_000.0, ["a", "b", "c"]), vec![1, 2, 3]);
        assert_eq!(
            r.check_upgrade(3, 900_000.0, ["a", "b", "c"], ["a"], Some(2))
                .err(),
            Some(DomainError::NotQualified(3))
        );
    }

    #[test]
    fn invalid_rules_name_the_entry() {
        let bad = DomainRules::new(vec![tier(1, 100.0, 0), tier(2, 50.0, 0)], vec![]);
        assert_eq!(bad.expect_err("decreasing").key, "domain.tiers[1]");
        let bad = DomainRules::new(vec![tier(1, 100.0, 0)], vec![badge("x", 4)]);
        assert_eq!(bad.expect_err("unknown tier").key, "domain.badges[0]");
        let bad = DomainRules::new(vec![tier(1, 100.0, 2)], vec![badge("x", 1)]);
        assert_eq!(bad.expect_err("too few badges").key, "domain.tiers[0]");
    }
}
