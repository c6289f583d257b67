"""The French message catalogue: every sentence a user reads, keyed by a stable code.

Programs, filters and tests use the code; people read the text. A code never changes when its
sentence is improved. Templates take `str.format` fields; `text(code, **values)` renders one and
`Message.of(code, **values)` keeps code, text and values together (for JSON and for tests). Each
area adds its sentences under its own prefix (`tenant.`, `users.`, `status.` …).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

CATALOGUE: dict[str, str] = {
    # --- shared words ---------------------------------------------------------------------------
    "severity.bloquant": "bloquant",
    "severity.avertissement": "avertissement",
    "severity.info": "info",
    "product.sage100": "Sage 100",
    "product.sage50": "Sage 50",
    "ssm.resource.products": "articles",
    "ssm.resource.accounts": "comptes",
    "ssm.resource.salesorders": "documents de vente",
    "ssm.plan.starter": "Starter, 50 requêtes par minute",
    "ssm.plan.4": "4 requêtes par seconde",
    "ssm.plan.13": "13 requêtes par seconde",

    # --- SSM → Sage (shared.inbound): why Sage refuses a record, by the agent's code ------------
    "sage.refused.article": "l'article « {article} » est inconnu ou en sommeil dans Sage",
    "sage.refused.no_price": "l'article « {article} » n'a aucun prix dans Sage",
    "sage.refused.quantity": "la quantité de l'article « {article} » doit être positive",
    "sage.refused.tiers": "le compte « {tiers} » n'est pas un client ou prospect de Sage",
    "sage.refused.reference": "la référence du devis dépasse ce que Sage accepte ({width} caractères)",
    "sage.refused.database": "la base Sage n'a pas pu être écrite (verrou ou délai dépassé)",
    "sage.refused.no_lines": "le devis n'a aucune ligne",
    "sage.refused.numbering": "la numérotation des devis de Sage (F_DOCCURRENTPIECE) est absente ou illisible",
    "sage.refused.vat": "le dossier n'a aucune ligne de vente dont reprendre le taux de TVA",
    "sage.refused.width": "{field} : {length} caractères, la colonne {column} de Sage en accepte {width}",
    "sage.refused.codepage": "{field} : le caractère « {char} » ne peut pas être enregistré par Sage",
    "sage.refused.email": "e-mail : « {value} » n'est pas une adresse que Sage accepte",
    "sage.refused.not_writable": "le champ {field} ne s'écrit pas dans Sage",
    "sage.refused.name": "un prospect doit avoir un nom",
    "sage.refused.tiers_gone": "le tiers {key} n'existe plus dans Sage",
    "sage.refused.converted": "le tiers {key} est désormais un client : seul Sage le modifie",
    "sage.refused.contact_tiers": "le tiers {tiers} du contact n'existe pas dans Sage",
    "sage.refused.contact_gone": "le contact {key} n'existe plus dans Sage",
    "sage.refused.collective_account": "le dossier n'a aucun client dont reprendre le compte collectif "
                                       "(CG_NumPrinc)",
    "sage.refused.code_too_long": "le prochain code {code_value} dépasse la largeur de CT_Num ({width})",
    "sage.refused.unknown_command": "l'agent ne connaît pas la commande {op}",
    "sage.refused.other": "Sage a refusé ({reason})",
    "inbound.refused": "Sage a refusé {what} « {key} » venu de SSM : {reason}. Rien n'a été écrit dans Sage ; "
                       "corrigez-le dans SSM et il sera renvoyé.",
    "inbound.what.account": "le prospect",
    "inbound.what.contact": "le contact",
    "inbound.warning.rep_unknown": "Le propriétaire SSM de « {key} » n'est pas un collaborateur de Sage : il a été "
                                   "écrit dans Sage sans commercial (CO_No).",
    "inbound.warning.last_name_filled": "Le contact « {key} » n'avait pas de nom dans SSM ; Sage en exige un, son "
                                        "prénom en tient lieu.",
    "inbound.unrouted": "« {name} » a été créé dans SSM dans l'agence « {branch} », qu'aucun dossier n'utilise : "
                        "donnez à un dossier `ssm_branch = \"{branch}\"` dans les réglages, ou placez la fiche dans "
                        "l'agence de son dossier. Rien n'a été écrit dans Sage.",
    "inbound.undone": "« {key} » a été modifié dans SSM ({fields}) ; {why}, la valeur de Sage a donc été remise.",
    "inbound.undone.client": "un client ne se modifie que dans Sage",
    "inbound.undone.conversion": "un prospect ne devient client que dans Sage",
    "inbound.ssm_deleted": "« {key} » a été supprimé dans SSM ; Sage le garde (les suppressions se font dans Sage) "
                           "et le prochain réalignement le recrée dans SSM.",
    "inbound.created_as_prospect": "Le compte « {key} » a été créé dans SSM comme client ; les clients ne se créent "
                                   "que dans Sage, Sage l'a donc en prospect et SSM l'affiche comme tel.",
    "inbound.created_in_sage": "La fiche créée dans SSM (n° SSM {ssm_id}) est « {key} » dans Sage.",
    "contact.name_filled": "Le contact « {key} » n'a pas de {missing} dans Sage ; SSM exige les deux, il affiche "
                           "« {mark} » jusqu'à ce que Sage l'ait.",
    "contact.missing.first_name": "prénom",
    "contact.missing.last_name": "nom",
    "contact.missing.both": "nom ni de prénom",
    "user.invite_needed": "{name} ({email}) doit être invité dans Sage Sales Management, ou créé avec "
                          "`ssm-connector users`, avant que ses comptes puissent lui être attribués",
    "user.no_email": "pas d'e-mail dans Sage",

    # --- quotes made in SSM (shared.inbound.quotes) ---------------------------------------------
    "quote.comment.pricing": "VALIDATION EN COURS : Les prix sont en cours de calcul avec {product}. Veuillez "
                             "patienter pendant la mise à jour.",
    "quote.comment.priced": "PRIX VALIDÉS : Les prix ont été calculés via {product}. Toute modification relancera "
                            "le calcul.",
    "quote.comment.not_priced": "PRIX NON CALCULÉS : {reason}. Corrigez le devis : il sera à nouveau calculé.",
    "quote.comment.stock": "Stock disponible — {article} : {stock}",
    "quote.comment.became": "Devenu dans Sage {what} {piece}.",
    "quote.became.order": "la commande",
    "quote.became.invoice": "la facture",
    "quote.refused.account": "le compte du devis n'est pas dans Sage",
    "quote.refused.foreign_product": "le produit « {product} » n'est pas un article de ce dossier Sage",
    "quote.refused": "Le devis {ssm_id} fait dans SSM ne peut pas être pris par Sage : {reason}. Il est revenu à "
                     "son statut d'attente avec la raison dans son commentaire ; rien n'a été écrit dans Sage.",
    "quote.created_in_sage": "Le devis {ssm_id} fait dans SSM est le devis {piece} dans Sage.",
    "quote.transformed": "Le devis « {key} » est devenu dans Sage {what} {piece} ; le devis SSM {ssm_id} l'indique "
                         "et reste.",

    # --- tenant check (shared.ssm.tenant, `ssm-connector check-tenant`) -------------------------
    "tenant.title": "Vérification du tenant Sage Sales Management — groupe « {group} », le {at}",
    "tenant.scope.group": "Groupe « {group} »",
    "tenant.scope.dossier": "Dossier {dossier}",
    "tenant.scope.dossier_named": "Dossier {dossier} — {name}",
    "tenant.login.refused": "SSM refuse les clés d'API configurées ([ssm] public_key et private_key) : "
                           "{reason}",
    "tenant.read.failed": "La liste « {resource} » de SSM n'a pas pu être lue : {reason}",
    "tenant.admin.not_configured": "Aucun utilisateur administrateur n'est réglé ([ssm] admin_user_email) : "
                                   "le connecteur ne le devine pas. Indiquez l'e-mail d'un utilisateur SSM "
                                   "actif ; il sera propriétaire des tiers dont le commercial n'est pas un "
                                   "utilisateur SSM.",
    "tenant.admin.missing": "Aucun utilisateur SSM n'a l'e-mail « {email} » ([ssm] admin_user_email) : "
                            "invitez-le dans SSM ou corrigez le réglage.",
    "tenant.admin.inactive": "L'utilisateur SSM « {email} » ([ssm] admin_user_email) est désactivé : "
                             "réactivez-le dans SSM ou choisissez-en un autre.",
    "tenant.admin.found": "Utilisateur administrateur : {name} ({email}), utilisateur SSM n° {id}.",
    "tenant.branch.chosen": "Agence SSM « {branch} » (n° {id}), {how}.",
    "tenant.branch.how.dossier": "réglée pour ce dossier (ssm_branch)",
    "tenant.branch.how.group": "réglée pour le groupe ([ssm] branch)",
    "tenant.branch.how.first": "la première agence active de SSM, faute de réglage "
                               "(ssm_branch du dossier ou [ssm] branch)",
    "tenant.branch.missing": "Aucune agence nommée « {branch} » dans SSM ({setting}) : créez-la dans "
                             "l'administration de SSM ou corrigez le réglage.",
    "tenant.branch.none": "SSM n'a aucune agence active : créez-en une dans l'administration de SSM.",
    "tenant.account_type.missing": "Le type de compte « {label} » n'existe pas dans SSM : les tiers de ce "
                                   "type ne peuvent pas être synchronisés. « check-tenant --fix » peut le "
                                   "créer.",
    "tenant.account_type.created": "Type de compte « {label} » créé dans SSM (n° {id}).",
    "tenant.account_type.not_created": "Le type de compte « {label} » n'a pas pu être créé : {reason}",
    "tenant.status.missing": "Le statut de document « {label} » n'existe pas dans SSM : les documents qui le "
                             "portent ne peuvent pas être synchronisés. L'API ne permet pas de le créer : "
                             "créez-le à la main dans l'administration de SSM avec le libellé exact "
                             "« {label} ».",
    "tenant.quote_status.missing": "Le statut de devis « {label} » ({product}) n'existe pas dans SSM ; il "
                                   "servira aux devis, une fonction à venir. Créez-le à la main dans "
                                   "l'administration de SSM avec le libellé exact « {label} ».",
    "tenant.currency.missing": "SSM n'a pas de devise de code ISO « EUR » : les documents ne pourront pas "
                               "porter leur devise.",
    "tenant.country.missing": "La France (code ISO « FR ») manque aux pays de SSM : la création "
                              "d'utilisateurs en a besoin pour l'indicatif du téléphone.",
    "tenant.rate.plan": "Débit réglé : {plan} ([ssm] rate_limit_per_s = {value}).",
    "tenant.rate.unknown": "Le débit réglé ([ssm] rate_limit_per_s = {value}) ne correspond à aucune offre "
                           "documentée de SSM (4 ou 13 requêtes par seconde, 50 par minute en Starter) : "
                           "réglez-le sur celle de votre abonnement.",
    "tenant.language.invalid": "La langue des utilisateurs ([ssm] user_language = « {value} ») n'est pas "
                               "acceptée par l'API de SSM ({choices}) : la création d'utilisateurs serait "
                               "refusée.",
    "tenant.custom_fields": "Champs personnalisés des {what} : {names}.",
    "tenant.custom_fields.none": "Aucun champ personnalisé sur les {what}.",
    "tenant.custom_fields.unreadable": "Les champs personnalisés des {what} n'ont pas pu être lus : {reason}",
    "tenant.dossier.inactive": "Dossier désactivé : non vérifié.",
    "tenant.fix.title": "Corrections faites par l'API (--fix) :",
    "tenant.fix.nothing": "Rien à créer par l'API.",
    "tenant.summary.blocking": "Points bloquants : {blocking} ; avertissements : {warnings}. La "
                               "synchronisation ne peut pas fonctionner tant que les points bloquants ne "
                               "sont pas réglés.",
    "tenant.summary.ok": "Rien ne bloque la synchronisation (avertissements : {warnings}).",

    # --- users and licences (shared.sync.user_admin, `ssm-connector users`) ---------------------
    "users.state.linked": "lié",
    "users.state.to_create": "à inviter/créer",
    "users.state.no_email": "sans e-mail",
    "users.column.key": "Clé Sage",
    "users.column.name": "Nom",
    "users.column.email": "E-mail",
    "users.column.state": "État",
    "users.column.ssm_id": "Utilisateur SSM",
    "users.title": "Collaborateurs du dossier {dossier}",
    "users.none": "Aucun collaborateur Sage n'est encore connu de ce dossier : lancez d'abord une "
                  "synchronisation.",
    "users.licence_note": "Chaque utilisateur actif de SSM est une licence payante : seuls les collaborateurs "
                          "choisis sont créés (--create CLÉ … ou --create-all).",
    "users.created": "{name} ({key}) créé dans SSM : utilisateur n° {id} (une licence de plus).",
    "users.linked_existing": "{name} ({key}) existe déjà dans SSM avec l'e-mail {email} : relié à "
                             "l'utilisateur n° {id}, rien n'a été créé.",
    "users.already_linked": "{name} ({key}) est déjà relié à l'utilisateur SSM n° {id} : rien à créer.",
    "users.unknown": "Aucun collaborateur de clé « {key} » dans le dossier {dossier}.",
    "users.refused.no_email": "{name} ({key}) n'a pas d'adresse e-mail dans Sage : il ne peut pas être créé "
                              "dans SSM, où l'e-mail relie l'utilisateur au collaborateur. Renseignez-la "
                              "dans Sage.",
    "users.refused.no_phone": "{name} ({key}) n'a ni téléphone ni portable dans Sage et aucun téléphone par "
                              "défaut n'est réglé ([ssm] user_phone_default) : SSM exige un téléphone, il "
                              "n'a pas été créé.",
    "users.refused.no_country": "SSM n'a pas la France (code ISO « FR ») parmi ses pays : {name} ({key}) n'a "
                                "pas été créé, l'indicatif de son téléphone en dépend.",
    "users.refused.no_branch": "Le dossier {dossier} n'a pas d'agence SSM ({reason}) : {name} ({key}) n'a "
                               "pas été créé.",
    "users.refused.language": "La langue « {value} » ([ssm] user_language) n'est pas acceptée par SSM "
                              "({choices}) : {name} ({key}) n'a pas été créé.",
    "users.failed": "SSM a refusé la création de {name} ({key}) : {reason}",
    "users.nothing_to_create": "Aucun collaborateur à créer dans le dossier {dossier}.",
    "users.summary": "Créés : {created} ; reliés à un utilisateur existant : {linked} ; refusés ou en "
                     "échec : {refused}.",
    "users.choose_dossier": "Plusieurs dossiers sont réglés : précisez lequel avec --dossier.",
    "users.unknown_dossier": "Le dossier « {dossier} » n'est pas dans la configuration.",

    # --- status page (shared.status.page) -------------------------------------------------------
    "status.collaborators.title": "Collaborateurs Sage",
    "status.collaborators.none": "Aucun collaborateur Sage connu pour l'instant.",
    "status.collaborators.note": "« à inviter/créer » : invitez-les dans SSM (ils seront reliés par leur "
                                 "e-mail) ou créez-les avec « ssm-connector users --create ».",
    "status.tenant.title": "Dernière vérification du tenant SSM",
    "status.tenant.checked_at": "Vérifié le {at}.",
    "status.tenant.none": "Aucune vérification du tenant enregistrée : lancez « ssm-connector check-tenant ».",
    "status.tenant.column.severity": "Gravité",
    "status.tenant.column.scope": "Portée",
    "status.tenant.column.text": "Constat",
    "status.tenant.group": "Groupe",
    # --- history window of documents (agent.detection, `ssm-connector agent history`) -----------
    "history.moved": "{dossier} : les documents datés du {start} ou après sont désormais envoyés à SSM ; "
                     "le prochain cycle envoie ceux qui ne l'étaient pas encore.",
    "history.all": "{dossier} : tous les documents sont désormais envoyés à SSM ; le prochain cycle envoie "
                   "ceux qui ne l'étaient pas encore.",
    "history.current": "{dossier} : documents envoyés à SSM depuis le {start}.",
    "history.current_all": "{dossier} : tous les documents sont envoyés à SSM.",
    "history.unset": "{dossier} : la fenêtre d'historique sera fixée au premier cycle.",
    "history.not_earlier": "{dossier} : les documents depuis le {current} sont déjà envoyés ; la fenêtre "
                           "d'historique ne recule que vers des dates plus anciennes (pas le {start}).",
    "history.bad_date": "« {value} » n'est pas une date (AAAA-MM-JJ attendu).",
}


def text(code: str, **values: Any) -> str:
    """The French sentence of `code` with its fields filled in.

    Raises:
        KeyError: `code` is not in the catalogue, or a field of its template is not given.
    """
    try:
        template = CATALOGUE[code]
    except KeyError:
        raise KeyError(f"no message '{code}' in the catalogue") from None
    return template.format(**values)


@dataclass(frozen=True)
class Message:
    """A sentence for people (`text`) with its code for programs (and the values it was built from)."""

    code: str
    text: str
    values: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, code: str, **values: Any) -> "Message":
        return cls(code, text(code, **values), dict(values))

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "text": self.text, "values": dict(self.values)}
