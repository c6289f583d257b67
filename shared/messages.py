"""The French message catalogue: every sentence a user reads, keyed by a stable code.

Programs, filters and tests use the code; people read the text. A code never changes when its
sentence is improved. Templates take `str.format` fields; `text(code, **values)` renders one and
`Message.of(code, **values)` keeps code, text and values together (for JSON and for tests). Each
area adds its sentences under its own prefix (`tenant.`, `users.`, `status.` …).
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping, Optional

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

    # --- delivery addresses and the stock depot of quotes (F_LIVRAISON, stock_depot) ------------
    "quote.address.unmapped": "L'adresse de livraison choisie sur le devis (adresse SSM n° {address}) n'est aucune "
                              "adresse de livraison de Sage : le devis {piece} a été créé avec {instead}.",
    "quote.address.gone": "L'adresse de livraison choisie sur le devis (n° {key} dans Sage) n'est plus une adresse "
                          "de ce client dans Sage : le devis {piece} a été créé avec {instead}.",
    "quote.address.main": "l'adresse de livraison principale du client (n° {number})",
    "quote.address.none": "aucune adresse de livraison (le client n'a pas d'adresse principale dans Sage)",
    "sage.refused.default_depot": "le dossier n'a pas un et un seul dépôt principal dans Sage (F_DEPOT, "
                                  "DE_Principal) : marquez-en un, ou faites compter le stock de tous les dépôts "
                                  "(réglage stock_depot) pour ce dossier",
    "tenant.addresses.off": "Adresses de livraison : non synchronisées pour ce dossier (delivery_addresses = false) ; "
                            "un devis prend l'adresse principale du client dans Sage.",
    "tenant.addresses.on": "Adresses de livraison : synchronisées vers les adresses de compte de SSM (ce tenant "
                           "accepte {fields}).",
    "tenant.addresses.unavailable": "Ce tenant SSM ne donne pas accès aux adresses de compte (/accountAddresses : "
                                    "{reason}) : les adresses de livraison de ce dossier ne peuvent pas y être "
                                    "synchronisées. Réglez delivery_addresses = false pour ce dossier (un devis "
                                    "prendra l'adresse principale du client), ou faites ouvrir les adresses de "
                                    "compte sur ce tenant.",
    "tenant.addresses.schema_unreadable": "son schéma ne décrit aucun champ",
    "tenant.addresses.read_only": "Ce tenant SSM n'accepte pas l'écriture de {fields} sur les adresses de compte : "
                                  "les adresses de livraison de ce dossier ne peuvent pas y être synchronisées. "
                                  "Réglez delivery_addresses = false pour ce dossier.",
    "tenant.addresses.undocumented": "L'API de SSM ne documente pas l'écriture des adresses de compte : les adresses "
                                     "de livraison ne sont pas synchronisées (delivery_addresses = true n'y change "
                                     "rien) ; un devis prend l'adresse principale du client dans Sage.",
    # --- realignment preview and adoption (shared.sync.preview, shared.sync.adopter) ----------
    "preview.title.first_load": "Aperçu du premier chargement du dossier {dossier} (calculé le {at})",
    "preview.title.realignment": "Aperçu du réalignement du dossier {dossier} (calculé le {at})",
    "preview.nothing_written": "Aperçu seulement : rien n'a été écrit, ni dans Sage, ni dans SSM.",
    "preview.column.entity": "Fiches",
    "preview.column.sage_records": "Dans Sage",
    "preview.column.create": "SSM : à créer",
    "preview.column.update": "SSM : à modifier",
    "preview.column.unchanged": "SSM : inchangées",
    "preview.column.delete": "SSM : à supprimer",
    "preview.column.adopt": "SSM : à reprendre",
    "preview.column.held": "SSM : en attente de votre choix",
    "preview.column.ssm_only": "SSM seul : laissées telles quelles",
    "preview.column.sage_create": "Sage : à créer",
    "preview.column.sage_update": "Sage : à modifier",
    "preview.column.sage_unchanged": "Sage : laissées telles quelles",
    "preview.entity.account": "Comptes",
    "preview.entity.contact": "Contacts",
    "preview.entity.product_family": "Familles d'articles",
    "preview.entity.product": "Articles",
    "preview.entity.order": "Commandes",
    "preview.entity.invoice": "Factures",
    "preview.entity.user": "Collaborateurs",
    "preview.entity.quote": "Devis",
    "preview.entity.delivery_address": "Adresses de livraison",
    "preview.candidate": "n° SSM {ssm_id} « {label} »",
    "preview.adopt.title": "Fiches déjà présentes dans SSM, reconnues sans ambiguïté ({count}) : elles seront "
                           "reprises (reliées à Sage) au lieu d'être créées en double.",
    "preview.adopt.line": "  {what} « {key} » ({label}) = fiche SSM n° {ssm_id} « {ssm_label} » ({rule})",
    "preview.adopt.how": "Pour les reprendre : « ssm-connector adopt --config FICHIER --dossier {dossier} --confirm » "
                         "(avant le premier chargement).",
    "preview.ambiguous.title": "Correspondances ambiguës ({count}) : ces fiches Sage ne seront pas créées dans SSM "
                               "tant que vous n'aurez pas choisi.",
    "preview.ambiguous.line": "  {what} « {key} » ({label}), {rule} : {candidates}",
    "preview.ambiguous.how": "Pour chacune, choisissez : « ssm-connector adopt --config FICHIER --dossier {dossier} "
                             "--bind ENTITÉ:CLÉ=N°SSM » pour la relier à une fiche SSM, ou « --create ENTITÉ:CLÉ » "
                             "pour en créer une nouvelle.",
    "preview.agent.title": "Ce que l'agent enverrait pour le dossier {dossier}",
    "preview.agent.realignment": "Sa prochaine exécution est une lecture complète (premier chargement ou réalignement).",
    "preview.agent.incremental": "Sa prochaine exécution n'enverra que les fiches nouvelles ou modifiées.",
    "preview.agent.column.entity": "Fiches",
    "preview.agent.column.records": "Dans Sage",
    "preview.agent.column.new": "Jamais envoyées",
    "preview.agent.column.changed": "Modifiées depuis l'envoi",
    "preview.agent.column.unchanged": "Inchangées",
    "preview.agent.column.deleted": "Supprimées de Sage",
    "preview.agent.column.invalid": "Illisibles",
    "preview.agent.ssm_side": "Ce que SSM en ferait (création, mise à jour, reprise de fiches existantes) : "
                              "« ssm-connector local --dry-run » ou la page d'état du dossier.",
    "preview.none": "Aucun aperçu n'a encore été calculé pour ce dossier : lancez « ssm-connector local --config "
                    "FICHIER --dry-run --dossier {dossier} ».",
    "preview.page.title": "Aperçu du réalignement",
    "preview.page.adoptions": "Reprise des fiches déjà présentes dans SSM",
    "preview.page.no_adoption": "Aucune fiche de SSM ne correspond à une fiche Sage non reliée.",
    "preview.page.column.what": "Fiche Sage",
    "preview.page.column.rule": "Reconnue par",
    "preview.page.column.status": "État",
    "preview.page.column.candidates": "Fiche(s) SSM",
    "adoption.status.unique": "reconnue : reprise à la confirmation",
    "adoption.status.ambiguous": "ambiguë : en attente de votre choix",
    "adoption.decision.held": "retenue : non créée dans SSM",
    "adoption.decision.create": "nouvelle fiche choisie",
    "adoption.rule.siret": "SIRET",
    "adoption.rule.vat": "n° de TVA intracommunautaire",
    "adoption.rule.siren": "SIREN (dans le n° de TVA)",
    "adoption.rule.name_postcode": "nom et code postal",
    "adoption.rule.email": "e-mail dans le même compte",
    "adoption.rule.reference": "référence article",
    "adoption.what.account": "le compte",
    "adoption.what.contact": "le contact",
    "adoption.what.product": "l'article",
    "adoption.bound": "Reprise : {what} « {key} » de Sage est désormais la fiche SSM n° {ssm_id} (elle garde son "
                      "numéro et ses champs propres à SSM ; Sage remplit les champs synchronisés).",
    "adoption.create_chosen": "Choix de l'administrateur : {what} « {key} » de Sage n'est aucune des fiches SSM "
                              "proposées ; une nouvelle fiche est créée dans SSM.",
    "adoption.held": "{what} « {key} » de Sage ressemble à plusieurs fiches de SSM (n° {candidates}) : il n'est pas "
                     "créé dans SSM tant que vous n'avez pas choisi. Reliez-le à l'une d'elles avec "
                     "« ssm-connector adopt --dossier {dossier} --bind {entity}:{key}={first} », ou créez-en une "
                     "nouvelle avec « ssm-connector adopt --dossier {dossier} --create {entity}:{key} ».",
    "adoption.to.account": "au compte",
    "adoption.to.product": "à l'article",
    "adoption.waits": "{what} « {key} » de Sage se rapporte {other} « {other_key} », dont la reprise attend "
                      "votre choix : il sera envoyé à SSM dès que vous aurez choisi.",
    "adoption.refused.linked": "{what} « {key} » est déjà relié à la fiche SSM n° {ssm_id} : rien n'a été changé.",
    "adoption.refused.taken": "La fiche SSM n° {ssm_id} est déjà celle de « {key} » : rien n'a été changé.",
    "adoption.refused.gone": "La fiche SSM n° {ssm_id} n'existe pas ou a été supprimée dans SSM : rien n'a été "
                             "changé.",
    "adoption.refused.unknown_entity": "« {value} » n'est pas une fiche qui se reprend (account, contact ou "
                                       "product) : écrivez ENTITÉ:CLÉ, par exemple account:DUPRE.",
    "adoption.refused.bad_request": "Demande illisible : envoyez un JSON dont « action » vaut « confirm », « bind » "
                                    "(avec « entity », « key » et « ssm_id ») ou « create » (avec « entity » et "
                                    "« key »).",
    "adoption.refused.bad_choice": "« {value} » ne se lit pas : écrivez ENTITÉ:CLÉ=N°SSM, par exemple "
                                   "account:DUPRE=12.",
    "adoption.done": "Reprises : {bound} fiche(s) reliée(s) ; {held} correspondance(s) ambiguë(s) retenue(s) en "
                     "attente de votre choix.",
    "adoption.decided.bind": "{what} « {key} » est relié à la fiche SSM n° {ssm_id}.",
    "adoption.decided.create": "{what} « {key} » sera créé comme nouvelle fiche dans SSM.",
    "adoption.decided.applied": "Sa modification retenue a été appliquée tout de suite.",
    "adoption.unknown_dossier": "Le dossier « {dossier} » n'est pas dans la configuration.",
    "adoption.choose_dossier": "Plusieurs dossiers sont réglés : précisez lequel avec --dossier.",
    # --- dossier lifecycle and reinstall (shared.lifecycle, agent.dossiers, `agent` commands) ----
    "lifecycle.state.unselected": "non sélectionné",
    "lifecycle.state.selected": "sélectionné, premier chargement à venir",
    "lifecycle.state.active": "actif",
    "lifecycle.state.inactive": "désactivé",
    "lifecycle.state.realigning": "réactivé, réalignement au prochain cycle",
    "lifecycle.state.restored": "base restaurée, réalignement au prochain cycle",
    "lifecycle.activity.active": "actif de nouveau",
    "lifecycle.activity.inactive": "désactivé",
    "lifecycle.notice_failed": "le cloud n'a pas pu être averti que le dossier est {state} : {reason}. L'agent "
                               "réessaie au prochain cycle.",
    "lifecycle.choice_required": "L'agent n'a aucun état local (nouvelle installation) alors que le groupe connaît "
                                 "déjà les dossiers {dossiers}. Rien n'est synchronisé avant votre choix : "
                                 "« ssm-connector agent databases » les liste, « ssm-connector agent select CODE » "
                                 "réactive un dossier connu ou en ajoute un nouveau.",
    "lifecycle.awaiting_choice": "Le dossier {dossier} est déjà connu du groupe mais n'a pas été choisi sur cet "
                                 "agent : il n'est pas synchronisé avant « ssm-connector agent select {dossier} ».",
    "lifecycle.group_unreachable": "Les dossiers déjà connus du groupe n'ont pas pu être lus ({reason}) : rien "
                                   "n'est synchronisé avant que l'agent puisse les consulter.",
    "lifecycle.group_http_failed": "le service du groupe ({url}) n'a pas répondu ({reason})",
    "lifecycle.company.unnamed": "une société sans raison sociale",
    "lifecycle.company.with_siret": "{name} (SIRET {siret})",
    "lifecycle.other_company_run": "La base du dossier {dossier} est celle de {found}, alors que le dossier "
                                   "synchronise {known} : ce n'est pas la même société. Rien n'a été envoyé ; "
                                   "vérifiez la connexion ODBC du dossier.",
    "lifecycle.other_company_select": "La base « {dossier} » est celle de {found}, mais le dossier {dossier} que le "
                                      "groupe connaît est celui de {known} : ce n'est pas la même société, la base "
                                      "n'est pas sélectionnée. Présentez la base de {known}, ou donnez à cette "
                                      "société un autre code de dossier.",
    "lifecycle.unreadable": "La base « {dossier} » n'a pas pu être lue : {reason}",
    "lifecycle.databases.column.id": "CODE",
    "lifecycle.databases.column.company": "SOCIÉTÉ",
    "lifecycle.databases.column.source": "ORIGINE",
    "lifecycle.databases.column.state": "ÉTAT",
    "lifecycle.databases.column.last_run": "DERNIER CYCLE",
    "lifecycle.databases.column.group": "DANS LE GROUPE",
    "lifecycle.databases.source.server": "serveur",
    "lifecycle.databases.source.config": "configuration",
    "lifecycle.databases.source.group": "groupe seulement",
    "lifecycle.databases.to_choose": "à choisir (connu du groupe)",
    "lifecycle.databases.group.unknown": "-",
    "lifecycle.databases.group.known": "{state}, {records} fiche(s), dernier cycle {last_run}",
    "lifecycle.databases.none": "Aucune base de société trouvée : renseignez [agent] server_odbc ou des [[dossiers]] "
                                "dans la configuration.",
    "lifecycle.databases.server_error": "Le serveur Sage n'a pas pu être listé : {error}",
    "lifecycle.databases.group_error": "Les dossiers déjà connus du groupe n'ont pas pu être lus : {error}",
    "lifecycle.databases.choose": "L'agent n'a encore rien synchronisé et le groupe connaît déjà des dossiers : "
                                  "réactivez-les ou ajoutez-en avec « ssm-connector agent select CODE » ; rien "
                                  "n'est synchronisé avant ce choix.",
    "lifecycle.select.unknown": "« {dossier} » n'est pas une base de société que l'agent voit ; « ssm-connector "
                                "agent databases » les liste.",
    "lifecycle.select.config_inactive": "« {dossier} » est désactivé dans la configuration (active = false).",
    "lifecycle.select.first": "{dossier} sélectionné : son premier cycle lit tout le dossier.",
    "lifecycle.select.again": "{dossier} réactivé : le cloud en est averti au prochain cycle, qui réaligne le "
                              "dossier (les valeurs de Sage priment, les champs propres à SSM sont gardés).",
    "lifecycle.select.adopted": "{dossier} repris : le groupe le connaissait déjà ; son prochain cycle le réaligne "
                                "(les valeurs de Sage priment, rien n'est créé en double).",
    "lifecycle.select.restored_copy": "Sa base a été recréée depuis la dernière synchronisation (copie restaurée, "
                                      "créée le {created}) : le réalignement reprend les valeurs de cette copie.",
    "lifecycle.select.already": "{dossier} est déjà sélectionné.",
    "lifecycle.deselect.unknown": "« {dossier} » n'est pas un dossier que l'agent connaît.",
    "lifecycle.deselect.done": "{dossier} désactivé : plus rien n'est synchronisé, dans un sens ni dans l'autre ; "
                               "ses fiches restent dans SSM. Le cloud l'affiche désactivé après le prochain cycle "
                               "de l'agent.",
    "lifecycle.run.nothing_selected": "Aucun dossier n'est sélectionné : « ssm-connector agent databases » les "
                                      "liste, « ssm-connector agent select CODE » en sélectionne un.",
    "lifecycle.run.not_selected": "« {dossier} » n'est pas sélectionné : « ssm-connector agent select {dossier} » "
                                  "d'abord.",
    "lifecycle.run.told": "{dossier} : le cloud est averti que le dossier est {state}.",
    "lifecycle.run.refused": "{dossier} : ÉCHEC : {error}",
    "lifecycle.journal.reactivated": "Le dossier {dossier} est réaligné sur Sage : les valeurs de Sage priment sur "
                                     "les champs synchronisés, les champs propres à SSM sont gardés.",
    "lifecycle.journal.reinstalled": "L'agent a été réinstallé et le dossier {dossier} choisi de nouveau : ce cycle "
                                     "le réaligne sur Sage, sans rien créer en double.",
    "lifecycle.journal.restored": "La base Sage du dossier {dossier} a été restaurée ou remplacée : ce cycle le "
                                  "réaligne sur Sage (les valeurs de la base restaurée priment).",

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

    # --- Sage rows read in part (agent.sage100.reader, shared.sage_rows) --------------------------
    "sage_row.what.user": "le collaborateur",
    "sage_row.what.account": "le compte",
    "sage_row.what.contact": "le contact",
    "sage_row.what.product_family": "la famille",
    "sage_row.what.product": "l'article",
    "sage_row.what.quote": "le devis",
    "sage_row.what.order": "la commande",
    "sage_row.what.invoice": "la facture",
    "sage_row.what.delivery_address": "l'adresse de livraison",
    "sage_row.reason.email": "{column} « {value} » n'est pas une adresse e-mail valide",
    "sage_row.reason.too_long": "{column} « {value} » dépasse les {limit} caractères que SSM accepte",
    "sage_row.reason.date": "{column} « {value} » n'est pas une date valide",
    "sage_row.reason.binary": "{column} contient une valeur binaire ({value}), pas du texte",
    "sage_row.reason.unreadable": "{column} contient un caractère illisible (texte Unicode invalide)",
    "sage_row.reason.number": "{column} « {value} » n'est pas un nombre",
    "sage_row.reason.whole": "{column} « {value} » n'est pas un nombre entier",
    "sage_row.reason.invalid": "{column} « {value} » est refusé par SSM",
    "sage_row.reason.modified": "sa date de modification cbModification « {value} » est illisible",
    "sage_row.left_out": "Le connecteur synchronise {what} « {key} » sans {fields} : {reasons}. Corrigez la fiche "
                         "dans Sage : la valeur sera envoyée et cet avertissement se fermera.",
    "sage_row.read_in_part": "Le connecteur synchronise {what} « {key} », mais {reasons}. Enregistrez la fiche à "
                             "nouveau dans Sage : cet avertissement se fermera.",
    "sage_row.not_synced": "Le connecteur ne synchronise pas {what} « {key} » : {reasons}. Corrigez la fiche dans "
                           "Sage : elle sera synchronisée et cet incident se fermera.",
    "sage_row.no_key": "Le connecteur ne synchronise pas la fiche {table} de cbMarq {marq} ({names}) : sa clé est "
                       "illisible ({reasons}). Corrigez-la dans Sage : elle sera synchronisée et cet incident se "
                       "fermera.",
    "sage_row.duplicate": "{table} contient {count} fiches de clé « {key} » : seule la plus ancienne (le plus petit "
                          "cbMarq) est synchronisée ; celle de cbMarq {marq} ({names}) ne l'est pas. Donnez-lui une clé "
                          "unique ou supprimez le doublon dans Sage : cet incident se fermera.",
    "sage_row.no_names": "sans autre information",

    # --- local runtime and demo console (local.runtime `ssm-connector local`, local.demo `make demo`,
    #     local.packaging; the agent command's run states) ----------------------------------------------------------------------------
    "local.cycle.title": "Passage du {started} UTC, {seconds} s",
    "local.cycle.no_name": "sans nom",
    "local.cycle.dossier": "{dossier} ({name}) : {health}, {incidents} incident(s) ouvert(s)",
    "local.cycle.agent": "agent : {line}",
    "local.cycle.agent_alone": "{dossier} : agent : {line}",
    "local.cycle.cloud": "cloud : synchronisation {run} {state} : {counts}",
    "local.cycle.bus": "bus : {completed} message(s) traité(s) en {invocations} appel(s) de fonction, {abandoned} "
                       "remis en file, {dead_letters} en lettres mortes, {pending} en attente",
    "local.agent.failed": "ÉCHEC : {error}",
    "local.agent.run": "synchronisation {run} {kind} : {counts} ; {batches} lot(s) envoyé(s)",
    "local.running": "un passage toutes les {interval} s ; Ctrl+C arrête",
    "local.package.written": "{path} écrit ({files} fichiers, {size} Kio)",
    "local.package.deploy": "déploiement : az functionapp deployment source config-zip --build-remote true "
                            "-g <groupe de ressources> -n <application de fonctions> --src {path}",
    "demo.company": "Société Sage {company} : {path} ({tiers} tiers, {articles} articles, {documents} documents)",
    "demo.simulator": "Simulateur SSM : {url}",
    "demo.first": "Première synchronisation (chargement complet des deux sociétés)…",
    "demo.after_first": "Après la première synchronisation",
    "demo.reps": "L'administrateur crée les commerciaux dans SSM (`ssm-connector users --create-all`) :",
    "demo.day": "Une journée de travail :",
    "demo.day.client": "Sage : le client {key} change de numéro de téléphone et de ville",
    "demo.day.prospect": "Sage : le prospect {key} change de numéro de téléphone",
    "demo.day.contact": "Sage : le contact {key} est supprimé",
    "demo.day.ssm": "SSM : un commercial renseigne le champ {field} du prospect {key} (n° SSM {ssm_id})",
    "demo.second": "Deuxième synchronisation (incrémentale)…",
    "demo.after_second": "Après la deuxième synchronisation",
    "demo.table.title": "{title} — {calls} appel(s) d'écriture à SSM",
    "demo.column.dossier": "dossier",
    "demo.column.entity": "entité",
    "demo.column.sage_rows": "lignes Sage",
    "demo.column.ssm_records": "fiches SSM",
    "demo.column.created": "créées",
    "demo.column.updated": "modifiées",
    "demo.column.deleted": "supprimées",
    "demo.column.incidents": "incidents",
    "demo.invalid_rows": "(+{count} illisible(s))",
    "demo.quotes": "(les devis se créent dans SSM et arrivent dans Sage à la demande : les devis saisis dans Sage "
                   "ne sont pas copiés dans SSM)",
    "demo.kept": "Prospect {key} dans SSM : {field} = « {value} » (saisi dans SSM, conservé par la synchronisation)",
    "demo.where": "Où regarder :",
    "demo.where.config": "configuration",
    "demo.where.companies": "sociétés Sage",
    "demo.where.state": "état du cloud",
    "demo.where.bus": "bus local",
    "demo.where.agent_state": "état de l'agent",
    "demo.where.simulator": "simulateur SSM",
    "demo.where.status_json": "état en JSON",
    "demo.where.status_page": "page d'état",
    "demo.where.again": "relancer",
    "demo.next.page": "Ouvrez la page d'état dans un navigateur : dossiers, synchronisations, incidents et journal.",
    "demo.next.again": "`ssm-connector local --config {config} --once` (le simulateur doit tourner : "
                       "`ssm-connector demo --serve`)",
    "demo.serving": "Le simulateur SSM et la page d'état restent ouverts ; Ctrl+C arrête.",
    "agent.cli.run_state.running": "en cours",
    "agent.cli.run_state.sending": "en envoi",
    "agent.cli.run_state.succeeded": "réussie",
    "agent.cli.run_state.failed": "échouée",
    "agent.cli.run_state.interrupted": "interrompue",
    # --- Sage rows whose parent Sage does not have (agent.sage100.spec.Orphans) ------------------
    "sage_row.orphan.contact": "Le connecteur ne synchronise pas {what} « {key} » ({rows}) : son compte {parent} "
                               "n'existe pas dans Sage ({parent_table}). Créez ce compte dans Sage, ou rattachez le "
                               "contact à un compte existant : il sera synchronisé et cet incident se fermera.",
    "sage_row.orphan.lines": "{table} contient {count} ligne(s) de {what} « {key} » ({rows}), mais ce document "
                             "n'existe pas dans Sage ({parent_table}, {parent}) : ces lignes ne sont pas "
                             "synchronisées. Supprimez-les, ou créez le document dans Sage : cet incident se fermera.",
    "sage_row.orphan.delivery_address": "Le connecteur ne synchronise pas {what} « {key} » ({rows}) : son compte "
                                        "{parent} n'existe pas dans Sage ({parent_table}). Créez ce compte dans "
                                        "Sage, ou supprimez cette adresse : cet incident se fermera.",
    "sage_row.orphan.more": "et {count} autre(s)",

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
    # --- Sage 50 FR exchange files (agent.sage50, shared.sync.exchange_report) -------------------
    "sage50.file.encoding": "ligne {line} : l'octet {byte} n'est pas un caractère {encoding}",
    "sage50.file.record_type": "ligne {line}, colonne « {column} » : « {value} » n'est pas un type de ligne "
                               "attendu ({expected})",
    "sage50.file.column_count": "ligne {line} : {found} colonnes au lieu de {expected} (une tabulation dans un "
                                "texte décale les colonnes suivantes)",
    "sage50.file.header": "ligne {line}, colonne {position} : « {found} » au lieu de « {column} » que le modèle "
                          "attend",
    "sage50.file.quote": "ligne {line}, colonne {column_number} : un guillemet fermant est suivi d'autre chose "
                         "qu'une tabulation",
    "sage50.file.unclosed_quote": "ligne {line} : un guillemet ouvert n'est jamais refermé",
    "sage50.file.too_long": "ligne {line}, colonne « {column} » : {length} caractères, le modèle en prévoit {width}",
    "sage50.file.bool": "ligne {line}, colonne « {column} » : « {value} » n'est pas une valeur oui/non ({expected})",
    "sage50.file.int": "ligne {line}, colonne « {column} » : « {value} » n'est pas un nombre entier",
    "sage50.file.decimal": "ligne {line}, colonne « {column} » : « {value} » n'est pas un nombre au format attendu "
                           "(séparateur décimal « {separator} », {decimals} décimales au plus)",
    "sage50.file.date": "ligne {line}, colonne « {column} » : « {value} » n'est pas une date au format {format}",
    "sage50.file.required": "ligne {line}, colonne « {column} » : la valeur obligatoire est absente",
    "sage50.file.orphan_record": "ligne {line} : une ligne de détail précède toute ligne d'en-tête « {first} »",
    "sage50.file.duplicate_key": "ligne {line} : la clé « {key} » figure déjà ligne {first}",
    "sage50.export.refused": "Le fichier d'exportation « {file} » de Sage 50 a été refusé en entier — {reason}. "
                             "Rien de ce fichier n'a été transmis : les données de la dernière exportation acceptée "
                             "restent en place. Corrigez le modèle d'exportation ou la fiche, puis exportez de nouveau.",
    "sage50.export.missing": "Le fichier d'exportation « {file} » n'a jamais été reçu dans le dossier d'échange : "
                             "créez son modèle d'exportation dans Sage 50 (voir docs/sage50.md).",
    "sage50.export.ignored": "Le fichier « {file} » déposé est plus ancien que la dernière exportation lue : il a été "
                             "ignoré.",
    "sage50.export.late": "Dernière exportation reçue il y a {age} (attendue au moins toutes les {expected}) : "
                          "vérifiez que Sage 50 exporte toujours vers le dossier d'échange.",
    "sage50.export.none": "Aucune exportation de Sage 50 reçue pour l'instant dans le dossier d'échange.",
    "sage50.export.received": "Dernière exportation reçue il y a {age}.",
    "sage50.age.minutes": "{n} min",
    "sage50.age.hours": "{n} h",
    "sage50.age.days": "{n} j",
    "sage.refused.unconfirmed": "le fichier d'import « {file} » déposé pour Sage 50 n'apparaît toujours pas dans ses "
                                "exportations après {hours} h : vérifiez que Sage 50 l'a bien importé",
    "sage.refused.separator": "{field} : une tabulation ou un retour à la ligne ne passe pas dans le fichier "
                              "d'import de Sage 50 (colonne « {column} »)",
    "sage.refused.decimals": "{field} : « {value} » a plus de {decimals} décimales",
    "sage.refused.required": "{field} est obligatoire pour Sage 50",
    "sage.refused.contact_rename": "le nom d'un contact de Sage 50 ne se change que dans Sage 50",

    # --- status page and its JSON (shared.status); the journal of runs; Sage → SSM incidents
    #     (shared.sync, shared.ssm); the bus, the state store, the agent and the command line -----
    "status.title": "État de synchronisation",
    "status.page_title": "État de synchronisation — {group}",
    "status.group_line": "Groupe de dossiers « {group} » · état au {at} ({zone})",
    "status.zone.paris": "heure de Paris",
    "status.zone.utc": "UTC",
    "status.switch.label": "Changer de dossier",
    "status.switch.all": "Tous les dossiers",
    "status.filter.label": "Filtrer les incidents",
    "status.filter.dossier": "Dossier",
    "status.filter.entity": "Entité",
    "status.filter.state": "État des incidents",
    "status.filter.all_dossiers": "Tous les dossiers",
    "status.filter.group": "Groupe (dossier inconnu)",
    "status.filter.all_entities": "Toutes les entités",
    "status.filter.submit": "Filtrer",
    "status.filter.reset": "Réinitialiser",
    "status.choice.named": "{name} ({id})",
    "status.choice.inactive": "{label} — désactivé",
    "status.dossiers.title": "Dossiers",
    "status.dossiers.none": "Aucun dossier n'est encore connu de ce groupe : un dossier apparaît ici dès que "
                            "l'agent installé sur le serveur Sage l'a enregistré.",
    "status.dossiers.unknown": "Aucun dossier « {dossier} » dans ce groupe.",
    "status.overview.title": "Vue d'ensemble",
    "status.overview.dossier": "Dossier",
    "status.overview.state": "État",
    "status.overview.health": "Santé",
    "status.overview.lag": "Retard",
    "status.overview.pending": "En attente",
    "status.overview.incidents": "Incidents ouverts",
    "status.overview.invites": "Invitations requises",
    "status.overview.never": "aucune synchronisation",
    "status.active": "Actif",
    "status.inactive": "Désactivé",
    "status.health.never-synced": "Jamais synchronisé",
    "status.health.ok": "À jour",
    "status.health.attention": "À surveiller",
    "status.health.error": "En erreur",
    "status.health.inactive": "Désactivé",
    "status.unknown": "inconnu",
    "status.unknown_because": "inconnu ({reason})",
    "status.yes": "oui",
    "status.no": "non",
    "status.fact.last_completed": "Dernière synchronisation réussie",
    "status.fact.none": "aucune",
    "status.fact.lag": "Retard",
    "status.fact.pending": "En attente",
    "status.fact.oldest_pending": "Plus ancien message en attente",
    "status.fact.oldest_pending_since": "depuis {duration}",
    "status.fact.dead_lettered": "Messages mis de côté",
    "status.fact.open_incidents": "Incidents ouverts",
    "status.fact.last_export": "Exportations de Sage 50",
    "status.fact.realignment": "Réalignement",
    "status.fact.realignment_due": "prévu à la prochaine synchronisation",
    "status.fact.last_realigned": "Dernier réalignement",
    "status.fact.deactivated_at": "Désactivé le",
    "status.pending.not_read": "non consulté",
    "status.pending.unavailable": "indisponible ({reason})",
    "status.pending.changes_unknown": "messages Sage : inconnu",
    "status.pending.commands_unknown": "commandes SSM : inconnu",
    "status.pending.changes_one": "{count} message Sage",
    "status.pending.changes_many": "{count} messages Sage",
    "status.pending.commands_one": "{count} commande SSM",
    "status.pending.commands_many": "{count} commandes SSM",
    "status.pending.both": "{changes}, {commands}",
    "status.pending.bus_silent": "le bus de messages n'a pas répondu",
    "status.runs.title": "Dernières synchronisations",
    "status.runs.none": "Aucune synchronisation pour l'instant.",
    "status.runs.start": "Début",
    "status.runs.end": "Fin",
    "status.runs.duration": "Durée",
    "status.runs.direction": "Sens",
    "status.runs.state": "État",
    "status.runs.realignment": "Réalignement",
    "status.runs.journal": "Journal",
    "status.runs.open_journal": "Voir le journal",
    "status.direction.sage_to_ssm": "Sage → SSM",
    "status.direction.ssm_to_sage": "SSM → Sage",
    "status.run_state.running": "En cours",
    "status.run_state.succeeded": "Réussie",
    "status.run_state.partial": "Partielle",
    "status.run_state.failed": "Échouée",
    "status.count.read": "Lus",
    "status.count.created": "Créés",
    "status.count.updated": "Modifiés",
    "status.count.deleted": "Supprimés",
    "status.count.skipped_unchanged": "Inchangés",
    "status.count.conflicts": "Conflits",
    "status.count.failed": "Échecs",
    "status.commands.title": "Commandes SSM → Sage en attente de l'agent",
    "status.commands.none": "Aucune commande n'attend l'agent.",
    "status.commands.sent_at": "Envoyée le",
    "status.commands.entity": "Entité",
    "status.commands.key": "Fiche",
    "status.commands.operation": "Demande",
    "status.commands.note": "L'agent installé sur le serveur Sage les applique à son prochain passage.",
    "status.commands.op.create": "Création dans Sage",
    "status.commands.op.update": "Modification dans Sage",
    "status.commands.op.price": "Calcul des prix",
    "status.commands.op.create-quote": "Création du devis dans Sage",
    "status.incidents.title": "Incidents — {state}",
    "status.incidents.group_title": "Incidents du groupe — {state}",
    "status.incidents.group_heading": "Incidents du groupe",
    "status.incidents.group_note": "Messages reçus pour un dossier que le groupe ne connaît pas.",
    "status.incidents.none.open": "Aucun incident ouvert",
    "status.incidents.none.resolved": "Aucun incident résolu",
    "status.incidents.none.all": "Aucun incident",
    "status.incidents.none_for_entity": "{none} pour l'entité {entity}.",
    "status.incidents.none_plain": "{none}.",
    "status.incidents.shown": "{shown} incidents affichés sur {total}.",
    "status.incidents.entity": "Entité",
    "status.incidents.key": "Clé",
    "status.incidents.operation": "Opération",
    "status.incidents.message": "Message",
    "status.incidents.first_seen": "Première occurrence",
    "status.incidents.last_seen": "Dernière occurrence",
    "status.incidents.attempts": "Tentatives",
    "status.incidents.state": "État",
    "status.incidents.set_aside": "Mis de côté",
    "status.incidents.retry_at": "oui, nouvel essai le {at}",
    "status.state_filter.open": "Ouverts",
    "status.state_filter.resolved": "Résolus",
    "status.state_filter.all": "Tous",
    "status.incident_state.open": "Ouvert",
    "status.incident_state.resolved": "Résolu",
    "status.invites.title": "Invitation requise",
    "status.invites.note": "Ces collaborateurs Sage doivent être invités dans Sage Sales Management ; ils seront "
                           "reliés par leur adresse e-mail.",
    "status.invites.since": "depuis le {at}",
    "status.journal.title": "Journal",
    "status.journal.run_title": "Journal de la synchronisation {direction} du {at}",
    "status.journal.all_runs": "Tout le journal",
    "status.journal.none": "Aucune entrée au journal.",
    "status.journal.at": "Date",
    "status.journal.entity": "Entité",
    "status.journal.key": "Clé",
    "status.journal.event": "Événement",
    "status.journal.message": "Message",
    "status.server.key": "Clé de fonction de l'état (créée pour cette exécution) : {key}",
    "status.server.page": "Page d'état de synchronisation : {url}",
    "status.json_link": "Version JSON de cet état",
    "status.api_link": "Description des routes JSON (OpenAPI)",
    "status.error.title": "Erreur {status}",
    "status.error.back": "Revenir à l'état complet",
    "status.query.invalid": "Filtre invalide : {problems}",
    "status.query.problem": "{name} : valeur « {value} » refusée",
    "status.dossier.unknown": "Le dossier « {dossier} » n'est pas connu de ce groupe.",
    "status.entity.user": "Utilisateur",
    "status.entity.account": "Tiers",
    "status.entity.contact": "Contact",
    "status.entity.product_family": "Famille d'articles",
    "status.entity.product": "Article",
    "status.entity.quote": "Devis",
    "status.entity.order": "Commande",
    "status.entity.invoice": "Facture",
    "status.entity.order_line": "Ligne de document",
    "status.entity.delivery_address": "Adresse de livraison",
    "status.entity.export": "Exportation Sage 50",
    "status.entity.message": "Message",
    "status.entity.run": "Synchronisation",
    "status.entity.connection": "Connexion",
    "status.operation.create": "Création",
    "status.operation.update": "Modification",
    "status.operation.upsert": "Mise à jour",
    "status.operation.delete": "Suppression",
    "status.operation.invite": "Invitation",
    "status.operation.invalid": "Donnée invalide",
    "status.operation.decode": "Lecture du message",
    "status.operation.command": "Commande SSM",
    "status.operation.read": "Lecture",
    "status.operation.bind": "Liaison",
    "status.operation.sage-write": "Écriture dans Sage",
    "status.operation.sage-warning": "Avertissement Sage",
    "status.operation.name-filled": "Nom complété",
    "status.operation.delivery-address": "Adresse de livraison remplacée",
    "status.operation.values-left-out": "Synchronisé sans une valeur",
    "status.operation.route": "Choix du dossier",
    "status.operation.price": "Calcul des prix",
    "status.event.run-start": "Début",
    "status.event.run-end": "Fin",
    "status.event.conflict": "Conflit",
    "status.event.ssm-deletion-ignored": "Suppression SSM ignorée",
    "status.event.invite-needed": "Invitation requise",
    "status.event.deletion-not-propagated": "Suppression non reportée",
    "status.event.dossier-inactive": "Dossier désactivé",
    "status.event.dossier-activated": "Dossier réactivé",
    "status.event.dossier-deactivated": "Dossier désactivé",
    "status.event.dossier-registered": "Dossier connecté",
    "status.event.dossier-state-outdated": "Avis périmé",
    "status.event.state-lost": "État perdu",
    "status.event.state-rebuilt": "État reconstruit",
    "status.event.envelope-not-handled": "Message non traité",
    "status.event.ssm-change-undone": "Modification SSM annulée",
    "status.event.created-as-prospect": "Créé en prospect",
    "status.event.created-in-sage": "Créé dans Sage",
    "status.event.quote-transformed": "Devis transformé",
    "status.event.mass-deletion-held": "Suppressions retenues",
    "status.event.export-ignored": "Exportation ignorée",
    "status.event.ssm-change-refused": "Modification SSM refusée",
    "status.event.recreated": "Recréé depuis Sage",
    "status.event.invite-matched": "Invitation acceptée",
    "status.event.quote-created-in-sage": "Devis créé dans Sage",
    "sync.resource.accounts": "le compte",
    "sync.resource.accountTypes": "le type de compte",
    "sync.resource.contacts": "le contact",
    "sync.resource.products": "l'article",
    "sync.resource.productFamilies": "la famille d'articles",
    "sync.resource.salesorders": "le document de vente",
    "sync.resource.salesordersLines": "la ligne de document de vente",
    "sync.resource.salesorderStatuses": "le statut de document de vente",
    "sync.resource.users": "l'utilisateur",
    "sync.resource.sales": "le total des ventes",
    "sync.resource.branches": "l'agence",
    "sync.resource.currencies": "la devise",
    "sync.resource.login": "la connexion",
    "sync.resource.extrafields": "la description des champs personnalisés",
    "sync.resource.other": "la ressource « {resource} »",
    "sync.ssm.no_details": "sans précision",
    "sync.ssm.keys_refused": "SSM refuse les clés d'intégration (clé publique {public_key}) : vérifiez les clés "
                             "publique et privée de SSM dans les réglages du connecteur.",
    "sync.ssm.no_login": "SSM n'a pas de service de connexion à « {resource} » : vérifiez l'adresse de SSM "
                         "([ssm] base_url) dans les réglages du connecteur.",
    "sync.ssm.already_gone": "{target} : plus aucune fiche dans SSM ; rien à supprimer.",
    "sync.ssm.database": "SSM a signalé une erreur de base de données sur {entity} {attempts} fois de suite "
                         "(HTTP {status}) : « {message} »",
    "sync.ssm.query": "SSM n'a pas pu exécuter la requête sur « {resource} » : « {message} »",
    "sync.ssm.refers_to_missing": "SSM a refusé {entity} : « {message} » (la fiche renvoie à un élément que SSM n'a "
                                  "pas)",
    "sync.ssm.session_refused": "SSM a encore refusé la session du connecteur juste après une nouvelle "
                                "connexion : vérifiez que les clés d'intégration sont toujours actives.",
    "sync.ssm.throttled": "SSM a continué de demander au connecteur de ralentir (HTTP 429) après {attempts} "
                          "tentatives sur {entity} ; nouvel essai plus tard.",
    "sync.ssm.no_answer": "SSM n'a pas répondu après {attempts} tentatives (HTTP {status}).",
    "sync.ssm.timeout": "SSM n'a pas répondu après {attempts} tentatives (aucune réponse en {timeout} s).",
    "sync.ssm.unreachable": "SSM est resté injoignable après {attempts} tentatives (« {message} ») ; vérifiez le "
                            "réseau et l'adresse de SSM.",
    "sync.ssm.refused": "SSM a refusé {entity} : « {message} »",
    "sync.ssm.forbidden": "SSM n'autorise pas cette modification sur {entity} : « {message} »",
    "sync.ssm.not_found": "SSM n'a pas {target}.",
    "sync.ssm.method": "SSM n'accepte pas cette opération sur « {resource} » : « {message} »",
    "sync.ssm.conflict": "SSM a refusé {entity}, en conflit avec une autre fiche : « {message} »",
    "sync.ssm.too_large": "SSM a refusé {entity}, de taille excessive : « {message} »",
    "sync.ssm.refused_status": "SSM a refusé {entity} (HTTP {status}) : « {message} »",
    "sync.ssm.failed_status": "SSM a échoué sur {entity} (HTTP {status}) : « {message} »",
    "sync.ssm.other_status": "SSM a répondu HTTP {status} sur {entity} : « {message} »",
    "sync.ssm.target": "{entity} {id}",
    "sync.ssm.target_resource": "la ressource « {resource} »",
    "sync.ssm.missing": "{entity} {id} : aucune fiche dans SSM.",
    "sync.ssm.deleted": "{entity} {id} : fiche supprimée dans SSM.",
    "sync.ssm.not_a_list": "SSM a répondu à la liste « {resource} » par autre chose qu'une liste.",
    "sync.ssm.same_page": "SSM a renvoyé deux fois la même page de « {resource} » : la pagination ne "
                          "fonctionne pas, la lecture a été arrêtée.",
    "sync.ssm.not_a_record": "SSM a répondu à « {resource}/{id} » par autre chose qu'une fiche.",
    "sync.ssm.not_a_description": "SSM a répondu à « {path} » par autre chose qu'une description.",
    "sync.ssm.no_id": "SSM a accepté {entity} sans dire quel numéro il lui a donné.",
    "sync.ssm.no_token": "SSM a accepté les clés d'intégration mais n'a donné aucun jeton de session.",
    "sync.ssm.not_json": "SSM a répondu au sujet de « {resource} » par autre chose que du JSON.",
    "sync.ssm.unconfirmed_create": "SSM n'a pas confirmé avoir créé {entity} ({reason}) et rien ne permet de "
                                   "le vérifier : la création n'a pas été renvoyée, pour éviter un doublon.",
    "sync.record.account": "le tiers « {key} »",
    "sync.record.contact": "le contact « {key} »",
    "sync.record.product": "l'article « {key} »",
    "sync.record.product_family": "la famille d'articles « {key} »",
    "sync.record.user": "le collaborateur « {key} »",
    "sync.record.quote": "le devis « {key} »",
    "sync.record.order": "la commande « {key} »",
    "sync.record.invoice": "la facture « {key} »",
    "sync.record.line": "la ligne de document « {key} »",
    "sync.record.order_line": "la ligne de document « {key} »",
    "sync.record.delivery_address": "l'adresse de livraison « {key} »",
    "sync.record.other": "la fiche « {key} » ({entity})",
    "sync.record.no_key": "une fiche {entity} sans clé",
    "sync.record.marq": "une fiche {entity} sans clé (cbMarq {marq})",
    "sync.invalid": "Impossible de synchroniser {record} : {problems}",
    "sync.invalid.problem": "{field} : {problem}",
    "sync.invalid.required": "obligatoire mais vide dans Sage",
    "sync.invalid.too_long": "dépasse les {max} caractères acceptés par SSM",
    "sync.invalid.email": "« {value} » n'est pas une adresse e-mail valide",
    "sync.invalid.line_numbers": "deux lignes ont le même numéro de ligne (DL_No)",
    "sync.invalid.other": "valeur refusée (« {value} »)",
    "sync.invalid.record_field": "fiche",
    "sync.invalid.unmapped": "illisible ({reason})",
    "sync.invalid.rep_unknown": "le commercial {number} n'existe pas dans Sage",
    "sync.invalid.not_a_number": "« {value} » n'est pas un nombre",
    "sync.invalid.not_whole": "« {value} » n'est pas un nombre entier",
    "sync.invalid.not_a_date": "« {value} » n'est pas une date",
    "sync.unexpected": "Une erreur inattendue a arrêté la synchronisation pour {record} ; nouvel essai automatique.",
    "sync.unreadable": "L'agent n'a pas pu lire {record} dans Sage.",
    "sync.not_understood": "L'agent a envoyé une modification que le cloud ne comprend pas ({record}, "
                           "opération {op}).",
    "sync.not_sent": "Impossible d'envoyer {record} à Sage Sales Management",
    "sync.dependency_missing": "{needed_by} renvoie à une fiche qui n'est pas encore dans Sage Sales Management : "
                               "{record} ; nouvel essai automatique.",
    "sync.binding_race": "{record} : deux synchronisations simultanées ; nouvel essai automatique.",
    "sync.outage": "Sage Sales Management ne répond pas : {cause}. Les modifications du dossier attendent et "
                   "sont renvoyées automatiquement dès qu'il répond.",
    "sync.breaker.not_usable": "non appliqué : la connexion à SSM n'est pas utilisable",
    "sync.breaker.not_answering": "non appliqué : Sage Sales Management ne répond pas ; le lot sera de nouveau "
                                  "essayé plus tard",
    "sync.unknown_dossier": "Données reçues pour le dossier {dossier}, qui n'est pas relié à ce groupe.",
    "sync.unreadable_message": "Un message de la file des modifications Sage n'a pas pu être lu ({reason}) ; "
                               "il a été mis de côté.",
    "sync.busy.cursor": "Le curseur du dossier n'a pas pu être enregistré : trop d'écritures simultanées.",
    "sync.busy.dossier": "Le dossier n'a pas pu être mis à jour : trop d'écritures simultanées.",
    "sync.busy.run": "La synchronisation n'a pas pu être mise à jour : trop d'écritures simultanées.",
    "sync.admin.not_configured": "Aucun utilisateur administrateur SSM n'est réglé ([ssm] admin_user_email) : les "
                                 "fiches dont le commercial Sage n'est pas un utilisateur SSM ne peuvent pas "
                                 "recevoir de propriétaire.",
    "sync.admin.missing": "L'utilisateur administrateur « {email} » des réglages n'est pas un utilisateur de "
                          "Sage Sales Management.",
    "sync.branch.none": "Sage Sales Management n'a aucune agence où placer les fiches.",
    "sync.replay.parked": "{cause}. Modification mise de côté après plusieurs tentatives, réessayée "
                          "automatiquement, la première fois le {at} (UTC) ; une nouvelle modification dans Sage "
                          "ou un réalignement l'envoie aussi.",
    "sync.replay.superseded": "{cause}. Modification mise de côté après plusieurs tentatives ; une modification "
                              "plus récente de la même fiche a été mise de côté depuis, c'est elle qui sera "
                              "réessayée.",
    "sync.replay.not_kept": "{cause}. Modification mise de côté {why} ; la prochaine modification de la fiche "
                            "dans Sage, ou le prochain réalignement du dossier, l'envoie de nouveau.",
    "sync.replay.why.attempts": "après plusieurs tentatives",
    "sync.replay.why.unreadable": "après plusieurs tentatives, et illisible pour un nouvel essai",
    "sync.replay.why.too_large": "après plusieurs tentatives, et trop volumineuse pour être gardée en vue d'un "
                                 "nouvel essai",
    "sync.replay.why.given_up": "et réessayée {replays} fois en deux jours sans succès",
    "sync.run.agent_counts": "relevé de l'agent : {counts}",
    "sync.run.no_agent_counts": "l'agent n'a transmis aucun compte",
    "sync.agent_count.read": "lus",
    "sync.agent_count.created": "nouveaux",
    "sync.agent_count.changed": "modifiés",
    "sync.agent_count.resent": "renvoyés",
    "sync.agent_count.deleted": "supprimés",
    "sync.agent_count.skipped_unchanged": "inchangés",
    "sync.agent_count.invalid": "illisibles",
    "sync.agent_count.deletions_held": "suppressions retenues",
    "sync.count": "{label} {value}",
    "bus.lock_lost": "Le verrou du bus sur un message a expiré avant son acquittement ; le message sera traité de "
                     "nouveau.",
    "bus.session_lock_lost": "Le verrou du bus sur la file d'un dossier a expiré ; ses messages en attente seront "
                             "traités de nouveau.",
    "bus.too_large": "Un message dépasse la taille qu'accepte Service Bus ; il ne peut pas être envoyé.",
    "bus.credentials": "Service Bus refuse les identifiants du connecteur ; vérifiez la chaîne de connexion ou "
                       "l'identité managée.",
    "bus.rights": "L'identité du connecteur n'a pas le droit Send ou Listen sur l'espace de noms Service Bus.",
    "bus.no_queue": "Une file Service Bus du connecteur n'existe pas ; déployez les modèles d'infrastructure.",
    "bus.queue_disabled": "Une file Service Bus du connecteur est désactivée ; activez-la dans le portail Azure.",
    "bus.busy": "Service Bus est surchargé ; nouvel essai automatique.",
    "bus.full": "La file Service Bus est pleine ; nouvel essai une fois les messages traités.",
    "bus.unreachable": "Service Bus est injoignable ; nouvel essai automatique.",
    "bus.timeout": "Service Bus n'a pas répondu à temps ; nouvel essai automatique.",
    "bus.error": "Service Bus a signalé une erreur ; nouvel essai automatique.",
    "bus.manage_right": "Compter les messages en attente demande le droit Manage sur l'espace de noms Service Bus "
                        "(une chaîne de connexion Manage, ou le rôle Azure Service Bus Data Owner).",
    "bus.no_count_per_dossier": "Service Bus ne compte pas les messages en attente par dossier ; voyez l'état du "
                                "dossier.",
    "bus.queue_missing": "La file Service Bus « {queue} » n'existe pas.",
    "bus.no_length": "Service Bus n'a pas pu donner la longueur de la file ; nouvel essai automatique.",
    "bus.local_busy": "Le bus de messages local est occupé ; nouvel essai automatique.",
    "store.unreachable": "Le stockage d'état Azure est injoignable ; nouvel essai automatique.",
    "store.too_large": "Une modification est trop volumineuse pour être gardée dans l'état de synchronisation.",
    "store.changed": "Un autre processus a modifié cette donnée d'état en premier.",
    "store.exists": "Cette donnée d'état existe déjà.",
    "store.no_table": "La table d'état « {table} » n'existe pas.",
    "store.missing": "Cette donnée d'état n'existe pas.",
    "store.busy": "Le stockage d'état Azure est surchargé ou indisponible ; nouvel essai automatique.",
    "store.deleted": "Un autre processus a supprimé cette donnée d'état en premier.",
    "store.changed_or_deleted": "Un autre processus a modifié ou supprimé cette donnée d'état en premier.",
    "store.busy_writers": "{what} : trop d'écritures simultanées.",
    "store.dossier_exists": "Le dossier « {dossier} » existe déjà.",
    "store.dossier_deleted": "Le dossier « {dossier} » a été supprimé entre-temps.",
    "store.what.link": "Le lien n'a pas pu être supprimé",
    "store.what.incident": "L'incident n'a pas pu être enregistré",
    "cli.error": "erreur : {message}",
    "cli.detail": "détail : {detail}",
    "agent.database_unknown": "La base Sage « {dossier} » n'est ni dans la configuration ni sur le serveur Sage "
                              "configuré.",
    "agent.untold": "le cloud n'a pas pu être prévenu que le dossier est {activity} : {error}",
    "agent.odbc.driver": "Le pilote ODBC ou la source de données des réglages de connexion à Sage est inutilisable.",
    "agent.odbc.unreachable": "La base Sage est injoignable pour le moment.",
    "agent.busy": "Un autre processus de l'agent synchronise déjà ces dossiers ; cette synchronisation a été sautée.",
    "agent.activity.active": "de nouveau actif",
    "agent.activity.inactive": "désactivé",
    "agent.hold": "{dossier} : {held} fiches « {what} » sur {records} seraient supprimées dans SSM ; suppression "
                  "retenue. Si elle est voulue, lancez `ssm-connector agent confirm-deletions {dossier} {entity}`",
    "agent.cli.nothing_selected": "Aucun dossier n'est sélectionné ; `agent databases` les liste, `agent select ID` "
                                  "en sélectionne un.",
    "agent.cli.column.id": "ID",
    "agent.cli.column.company": "SOCIÉTÉ",
    "agent.cli.column.source": "SOURCE",
    "agent.cli.column.selected": "SÉLECTIONNÉ",
    "agent.cli.column.last_run": "DERNIÈRE SYNCHRONISATION",
    "agent.cli.inactive": "désactivé",
    "agent.cli.yes": "oui",
    "agent.cli.no": "non",
    "agent.cli.never": "jamais",
    "agent.cli.no_database": "Aucune base Sage trouvée : réglez [agent] server_odbc ou listez les [[dossiers]] dans "
                             "la configuration.",
    "agent.cli.server_unlisted": "Les bases du serveur Sage n'ont pas pu être listées : {error}",
    "agent.cli.unseen": "« {dossier} » n'est pas une base Sage que l'agent voit ; `agent databases` les liste.",
    "agent.cli.unseen_unlisted": "« {dossier} » n'est pas une base Sage que l'agent voit (les bases du serveur n'ont "
                                 "pas pu être listées : {error}) ; `agent databases` les liste.",
    "agent.cli.inactive_in_settings": "« {dossier} » est désactivé dans la configuration (active = false).",
    "agent.cli.selected_again": "{dossier} sélectionné de nouveau : sa prochaine synchronisation prévient le cloud et "
                                "réaligne tout (Sage fait foi).",
    "agent.cli.selected_first": "{dossier} sélectionné : sa première synchronisation lit tout le dossier.",
    "agent.cli.selected": "{dossier} sélectionné.",
    "agent.cli.unknown": "« {dossier} » n'est pas une base Sage que l'agent connaît.",
    "agent.cli.deselected": "{dossier} désélectionné : plus rien n'est synchronisé ; ses fiches restent dans SSM. "
                            "Le cloud l'affiche désactivé après la prochaine synchronisation de l'agent.",
    "agent.cli.recovered": "{dossier} : envoi terminé de la synchronisation {run} laissée par un processus précédent",
    "agent.cli.failed": "{dossier} : ÉCHEC : {error}",
    "agent.cli.kind.realignment": "réalignement",
    "agent.cli.kind.incremental": "incrémentale",
    "agent.cli.run": "{dossier} : synchronisation {run} {kind} : {counts} ; {batches} lot(s) envoyé(s)",
    "agent.cli.reason": "  réalignement car {reason}",
    "agent.cli.notice": "{dossier} : le cloud sait que le dossier est {activity}",
    "agent.cli.notice_failed": "{dossier} : ÉCHEC : {error} ; nouvel essai à la prochaine synchronisation",
    "agent.cli.not_selected": "« {dossier} » n'est pas sélectionné ; lancez d'abord `agent select {dossier}`.",
    "agent.cli.summary": "{done} dossier(s) synchronisé(s), {failed} en échec.",
    "agent.cli.stopping": "arrêt après le dossier en cours ({signal})",
    "agent.cli.running": "agent en marche toutes les {interval} s ; Ctrl+C ou SIGTERM l'arrête",
    "agent.cli.cycle_busy": "cycle {cycle} : {reason}",
    "agent.cli.cycle": "cycle {cycle} : {done} dossier(s) synchronisé(s), {failed} en échec",
    "agent.cli.stopped": "agent arrêté",
    "agent.cli.commands_applied": "{dossier} : {count} commande(s) de SSM appliquée(s)",
    "agent.cli.unknown_entity": "« {entity} » n'est pas une entité que l'agent synchronise ({entities}).",
    "agent.cli.no_hold": "{dossier} n'a aucune suppression retenue de « {entity} » ; `agent state` montre ce que "
                         "l'agent retient.",
    "agent.cli.hold_confirmed": "{dossier} : la prochaine synchronisation envoie à SSM les {held} suppressions "
                                "retenues de « {entity} ». Celles des fiches revenues dans Sage d'ici là ne sont pas "
                                "envoyées.",
    "agent.cli.state_empty": "Aucun dossier dans l'état de l'agent ({path}).",
    "agent.cli.state_title": "état de l'agent : {path}",
    "agent.cli.flag.selected": "sélectionné",
    "agent.cli.flag.not_selected": "non sélectionné",
    "agent.cli.flag.realigns": "prochaine synchronisation : réalignement",
    "agent.cli.told_at": "prévenu le {at}",
    "agent.cli.to_tell": "à prévenir à la prochaine synchronisation",
    "agent.cli.activity_again": "réactivé le {at}, cloud {told}",
    "agent.cli.activity_off": "désactivé le {at}, cloud {told}",
    "agent.cli.last_success": "dernier succès : {at}",
    "agent.cli.last_error": "dernière erreur : {error} (le {at})",
    "agent.cli.pending_sent": "en cours d'envoi",
    "agent.cli.pending_dropped": "incomplète, sera abandonnée",
    "agent.cli.pending": "synchronisation en attente : {run} {status}, {unsent} lot(s) sur {batches} non envoyé(s)",
    "agent.cli.hold_confirmed_at": "confirmé le {at} : la prochaine synchronisation les envoie",
    "agent.cli.watermark": "{entity} relevé {mark} fiches {records} (illisibles {invalid})",
    "agent.cli.state_run": "synchronisation {run} {state} {kind} {counts}",
    "agent.cli.state_run_error": "erreur : {error}",
    "agent.more_problems": "{head} ; … et {more} autre(s) problème(s)",
    "agent.too_large": "Impossible d'envoyer {record} : {size} Ko de données, le bus en accepte {limit} Ko par "
                       "message.",
    "agent.note.read_in_full": "{count} fiche(s) « {entity} » de Sage étaient plus anciennes que le dernier "
                               "relevé et inconnues de l'agent : cette entité a été relue en entier.",
    "agent.note.read_in_spans": "{count} fiche(s) « {entity} » de Sage étaient plus anciennes que le dernier "
                                "relevé et inconnues de l'agent : cette entité a été relue en entier dans les "
                                "{spans} plage(s) de cbMarq qui les contiennent.",
    "agent.reason.first": "première synchronisation de ce dossier",
    "agent.reason.reselected": "le dossier est de nouveau sélectionné après une pause (désélectionné, désactivé ou agent réinstallé)",
    "agent.reason.other_database": "la base Sage n'est plus celle synchronisée auparavant (restaurée ou remplacée)",
    "agent.reason.other_database_changes": "la base Sage n'est plus celle synchronisée auparavant (restaurée ou "
                                           "remplacée : {changes})",
    "agent.reason.clock": "l'horloge du serveur Sage ({clock}) est en retard sur la dernière modification "
                          "synchronisée ({latest})",
    "agent.reason.reverted": "des fiches sont revenues à une version plus ancienne (la base a été restaurée "
                             "depuis une copie) : {records}",
    "journal.run.start": "Début de la synchronisation {direction}.",
    "journal.run.start_realignment": "Début de la synchronisation {direction} : réalignement, Sage fait foi.",
    "journal.run.start_reasons": "Début de la synchronisation {direction} : réalignement, Sage fait foi ({reasons}).",
    "journal.run.end": "Fin de la synchronisation {direction} : {counts}.",
    "journal.run.end_conflicts": "Fin de la synchronisation {direction} : {counts} ; {conflicts} conflit(s), la "
                                 "valeur de Sage a été gardée (détail ci-dessous).",
    "journal.inactive_changes": "{count} modification(s) de Sage sont arrivées alors que le dossier est "
                                "désactivé ; elles n'ont pas été appliquées (la prochaine activation réaligne le "
                                "dossier).",
    "journal.run_inactive": "Une synchronisation a commencé alors que le dossier est désactivé ; ses modifications "
                            "ne sont pas appliquées.",
    "journal.registered": "Le dossier {dossier} est désormais relié au groupe.",
    "journal.state_lost": "Le cloud n'avait aucune trace du dossier {dossier}, alors que l'agent en envoie des "
                          "modifications ordinaires : l'état de synchronisation du dossier a été perdu (stockage "
                          "restauré ou vidé). Le dossier est de nouveau relié et, jusqu'à son prochain "
                          "réalignement, chaque fiche sans lien est d'abord cherchée dans Sales Management par "
                          "son identifiant externe avant d'être créée, si bien qu'aucune n'est créée deux fois. "
                          "Un réalignement (désélectionner puis sélectionner de nouveau le dossier sur l'agent) "
                          "reconstruit entièrement son état.",
    "journal.state_rebuilt": "Le réalignement a reconstruit l'état de synchronisation du dossier : les fiches "
                             "sont de nouveau créées sans recherche préalable.",
    "journal.state_outdated.activated": "Un avis de l'agent indiquant que le dossier a été activé ({at} UTC) a été "
                                        "mis de côté et est arrivé après un changement plus récent ; il n'a pas "
                                        "été appliqué.",
    "journal.state_outdated.deactivated": "Un avis de l'agent indiquant que le dossier a été désactivé ({at} UTC) "
                                          "a été mis de côté et est arrivé après un changement plus récent ; il "
                                          "n'a pas été appliqué.",
    "journal.activated": "Le dossier {dossier} a été réactivé sur le serveur Sage ; sa prochaine "
                         "synchronisation est un réalignement (Sage fait foi).",
    "journal.deactivated": "Le dossier {dossier} a été désactivé sur le serveur Sage : plus rien n'est "
                           "synchronisé jusqu'à sa réactivation ; ses fiches restent dans Sales Management.",
    "journal.reactivated_by_realignment": "Une synchronisation de réalignement de l'agent a réactivé le dossier "
                                          "{dossier}.",
    "journal.not_handled": "Un message {kind} ({op}) est arrivé sur la file des modifications Sage ; cette version "
                           "ne le traite pas à cet endroit.",
    "journal.conflict": "{record} : le champ {field} a été modifié dans Sage et dans SSM ; la valeur de Sage est "
                        "gardée. Si celle de SSM était la bonne, saisissez-la dans Sage.",
    "journal.conflict_ssm": "{record} : le champ {field} a été modifié dans Sage et dans SSM ; la valeur de SSM "
                            "est gardée (ce champ se décide dans SSM).",
    "journal.ssm_change_refused": "{record} : le champ {field} ne se modifie que dans Sage ; la modification "
                                  "faite dans SSM (« {value} ») a été annulée. Faites-la dans Sage si elle est "
                                  "voulue.",
    "journal.recreated": "{record} : la fiche avait été supprimée dans SSM ; elle a été recréée depuis Sage. "
                         "Pour la retirer, supprimez-la dans Sage.",
    "journal.ssm_deletion_ignored": "{record} : la fiche a été supprimée dans SSM ; Sage la garde et le prochain "
                                    "réalignement la recrée dans SSM. Pour la retirer, supprimez-la dans Sage.",
    "journal.deletion_not_propagated": "{record} : la fiche a été supprimée dans Sage ; elle reste dans SSM, où "
                                       "elle se gère : supprimez-la dans SSM si besoin.",
    "journal.user_deletion_not_propagated": "{record} : la fiche a été supprimée dans Sage ; l'utilisateur SSM "
                                            "reste, les utilisateurs se gèrent dans SSM.",
    "journal.invite_matched": "{email} a été invité dans SSM ; la fiche de {record} est désormais reliée à cet "
                              "utilisateur.",
    "sync.ssm.unknown_value": "SSM n'a pas de valeur « {description} » dans « {resource} » (il a : {known}) ; "
                              "créez-la dans SSM ou corrigez les réglages du connecteur.",

    # --- crash safety and stuck records (locks taken over, bounded runs, parked records) -------
    "crash.run_lock_taken_over": "Le verrou de l'agent ({path}) avait été laissé par un processus arrêté "
                                 "brutalement (PID {pid}) : il a été repris, la synchronisation interrompue "
                                 "reprend là où elle s'était arrêtée.",
    "crash.bus_lock_taken_over": "Le dossier {dossier} était verrouillé sur la file « {queue} » par un processus "
                                 "arrêté brutalement (PID {pid}) : le verrou a été repris et ses {messages} "
                                 "message(s) en cours sont traités de nouveau.",
    "crash.bus_lock_expired": "Le dossier {dossier} était verrouillé sur la file « {queue} » par un processus (PID "
                              "{pid}) qui ne donnait plus signe de vie : son verrou a expiré et a été repris ; ses "
                              "{messages} message(s) en cours sont traités de nouveau.",
    "crash.waiting_parent": "{what} « {key} » fait référence {to_parent} « {parent_key} », qui n'est pas "
                            "encore dans SSM (voir son incident) : il est mis de côté et sera envoyé dès que "
                            "{parent_what} « {parent_key} » y sera.",
    "crash.parent_missing": "{what} « {key} » fait référence {to_parent} « {parent_key} », qui n'existe pas "
                            "dans Sage : il n'est pas envoyé à SSM. Corrigez la référence dans Sage, ou créez "
                            "{parent_what} « {parent_key} » : il sera envoyé dès que Sage l'aura.",
    "crash.cycle_ceiling": "Durée maximale d'un passage atteinte ({seconds} s, réglage [agent] cycle_max_s) : "
                           "{pending} message(s) restent à traiter et les dossiers non lus attendent ; le "
                           "prochain passage reprend là où celui-ci s'est arrêté.",
    "crash.set_aside.title": "Enregistrements mis de côté",
    "crash.set_aside.count": "{count} enregistrement(s) que SSM n'a pas encore reçus, chacun avec son incident "
                             "(référence absente, refus ou panne de SSM) ; ils sont renvoyés d'eux-mêmes quand "
                             "leur cause disparaît, ou dès maintenant avec ce bouton.",
    "crash.set_aside.button": "Renvoyer maintenant",
    "crash.replay.done": "Dossier {dossier} : {replayed} enregistrement(s) mis de côté renvoyé(s) ; {resolved} sont "
                         "maintenant dans SSM, {still} restent mis de côté (voir leurs incidents).",
    "crash.replay.back": "Revenir à l'état de la synchronisation",
    "crash.replay.unknown": "Le dossier « {dossier} » n'est pas connu de ce groupe.",
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
    # --- command-line help (`ssm-connector --help` and every subcommand's, shared.cli_text) -----
    "cli.usage": "utilisation : ",
    "cli.positionals": "arguments positionnels",
    "cli.options": "options",
    "cli.help": "afficher cette aide et quitter",
    "cli.config": "fichier de réglages (TOML) ; les variables SSMCONN__SECTION__CHAMP le complètent et priment",
    "cli.dossier_only": "seulement ce dossier",
    "cli.json": "afficher le résultat en JSON",
    "cli.main": "Garde les dossiers Sage 100 / Sage 50 et Sage Sales Management en accord.",
    "cli.verbose": "journal plus détaillé (-vv : mise au point, chaque appel SSM)",
    "cli.commands": "commande à lancer",
    "cli.agent": "l'agent installé sur le serveur Sage",
    "cli.agent.description": "L'agent sur le serveur Sage : choix des dossiers, cycles de synchronisation, état local.",
    "cli.agent.databases": "lister les bases de société visibles sur le serveur et celles qui sont choisies",
    "cli.agent.select": "synchroniser une base de société",
    "cli.agent.deselect": "arrêter de synchroniser une base de société",
    "cli.agent.run_once": "faire un cycle de chaque dossier choisi",
    "cli.agent.dry_run": "lire Sage et dire ce que le cycle enverrait ; rien n'est envoyé ni enregistré",
    "cli.agent.run": "faire des cycles sans fin jusqu'à l'arrêt (Ctrl+C, SIGTERM)",
    "cli.agent.interval": "secondes entre deux cycles (par défaut : `agent.interval_s`)",
    "cli.agent.confirm": "laisser le prochain cycle envoyer les suppressions retenues par l'agent pour une entité",
    "cli.agent.entity": "l'entité : {entities}",
    "cli.agent.history": "afficher, ou reculer, la date à partir de laquelle les documents sont envoyés à SSM",
    "cli.agent.history_from": "envoyer les documents datés de ce jour ou après (plus ancien que la date actuelle seulement)",
    "cli.agent.history_all": "envoyer tous les documents",
    "cli.agent.state": "afficher l'état local de l'agent",
    "cli.agent.state_json": "sortie en JSON, pour les programmes",
    "cli.local": "lancer l'agent, le bus, les traitements du cloud et la page d'état dans un seul processus",
    "cli.local.description": "Le fonctionnement local : l'agent, le bus, les traitements du cloud et la page "
                             "d'état dans un seul processus.",
    "cli.local.once": "faire un seul cycle, afficher son bilan et quitter",
    "cli.local.no_status": "ne pas servir la page d'état",
    "cli.local.dry_run": "afficher ce que ferait un réalignement (et les fiches SSM qu'il adopterait) ; "
                         "rien n'est écrit",
    "cli.local.dossier": "avec --dry-run : seulement ce dossier",
    "cli.local.json": "avec --dry-run : afficher l'aperçu en JSON",
    "cli.check_tenant": "vérifier que le tenant SSM contient ce dont le connecteur a besoin",
    "cli.check_tenant.description": "Vérifie le tenant SSM (utilisateurs, agences, types de compte, statuts, "
                                    "devises, pays, champs personnalisés, formule de débit).",
    "cli.check_tenant.fix": "créer ce que l'API permet (types de compte), puis vérifier de nouveau",
    "cli.users": "lister les collaborateurs Sage et leurs utilisateurs SSM ; créer ceux choisis",
    "cli.users.description": "Chaque utilisateur SSM actif est une licence payante : les utilisateurs ne sont "
                             "créés qu'avec --create ou --create-all.",
    "cli.users.create": "créer ces collaborateurs dans SSM",
    "cli.users.create_all": "créer tous les collaborateurs encore à créer",
    "cli.adopt": "prévisualiser un premier chargement ou un réalignement ; adopter les fiches que SSM a déjà",
    "cli.adopt.description": "Rapproche les fiches SSM créées avant le connecteur des fiches Sage et les lie "
                             "après confirmation au lieu de les dupliquer.",
    "cli.adopt.dossier": "le dossier (obligatoire quand plusieurs sont configurés)",
    "cli.adopt.confirm": "lier chaque correspondance unique, retenir chaque correspondance ambiguë jusqu'à "
                         "votre choix",
    "cli.adopt.bind": "lier ces fiches Sage aux fiches SSM choisies",
    "cli.adopt.create": "ces fiches Sage sont nouvelles : les créer dans SSM",
    "cli.package": "construire le zip déployable de la Function App",
    "cli.package.out": "où écrire le zip",
    "cli.demo": "construire deux sociétés de démonstration et les synchroniser avec le simulateur SSM",
    "cli.demo.description": "La démonstration : deux sociétés Sage de démonstration synchronisées avec le "
                            "simulateur SSM.",
    "cli.demo.size": "taille des sociétés de démonstration (par défaut tiny)",
    "cli.demo.dir": "dossier de travail (par défaut var/demo)",
    "cli.demo.serve": "garder le simulateur et la page d'état jusqu'à Ctrl+C",
    "cli.simulator": "servir une API Sage Sales Management simulée",
    "cli.simulator.description": "Sert le simulateur SSM jusqu'à Ctrl+C et affiche l'adresse et les clés "
                                 "d'intégration à mettre dans les réglages [ssm] du connecteur.",
    "cli.simulator.host": "adresse d'écoute (par défaut 127.0.0.1)",
    "cli.simulator.port": "port (par défaut 8765 ; 0 = un port libre)",
    "cli.simulator.latency": "délai ajouté à chaque requête, en millisecondes",
    "cli.simulator.plan": "la formule de débit des identifiants : starter (50 par minute), 4 ou 13 requêtes "
                          "par seconde, ou none (par défaut {default})",
    "cli.simulator.rate_limit": "requêtes par seconde avant que SSM réponde 429 (remplace --plan)",
    "cli.simulator.error_rate": "part des requêtes répondues 500/502/503 (de 0 à 1)",
    "cli.simulator.seed": "graine des identifiants, des clés et des pannes",
    "cli.simulator.listening": "Simulateur SSM à l'écoute sur {url}",
    "cli.simulator.limit": "  limite de débit : {limit}",
    "cli.simulator.limit_rate": "{rate} requêtes par seconde",
    "cli.simulator.limit_plan": "formule {plan}",
    "cli.simulator.limit_none": "aucune",
    "cli.simulator.public_key": "  clé publique : {key}",
    "cli.simulator.private_key": "  clé privée : {key}",
    "cli.simulator.admin_user": "  utilisateur administrateur : {email}",
    "cli.simulator.stop": "Ctrl+C pour arrêter.",
}


def label(prefix: str, value: object) -> str:
    """The catalogue's word for `value` under `prefix` (an entity, operation, event …); a value the
    catalogue does not name shows as it is."""
    raw = getattr(value, "value", value)
    code = f"{prefix}.{raw}"
    return text(code) if code in CATALOGUE else str(raw)


def record_name(entity: Optional[str], key: Optional[str]) -> str:
    """A record named in a sentence, with its article: « le tiers « C001 » »."""
    kind = label("status.entity", entity).lower() if entity else "?"
    if not key:
        return text("sync.record.no_key", entity=kind)
    code = f"sync.record.{entity}"
    return text(code, key=key) if code in CATALOGUE else text("sync.record.other", key=key, entity=kind)


def sentence(words: str) -> str:
    """`words` with a capital first letter (a sentence may start with « le tiers … »)."""
    return words[:1].upper() + words[1:]


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


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[str, "re.Pattern[str]", int], ...]:
    """Every template holding a word of its own as a regex with one group per field, the most
    literal text first (so a sentence is told apart from a shorter one it may contain as a value)."""
    compiled = []
    for code, template in CATALOGUE.items():
        regex, literal, names = "", 0, set()
        for prefix, name, _, _ in string.Formatter().parse(template):
            regex += re.escape(prefix)
            literal += len(prefix)
            if name is not None:
                regex += "(.+?)" if name not in names else ".+?"
                names.add(name)
        if re.search(r"[^\W\d_]{3}", "".join(part for part, *_ in string.Formatter().parse(template))):
            compiled.append((code, re.compile(regex, re.DOTALL), literal))   # not "{none}." or "{a}, {b}"
    return tuple(sorted(compiled, key=lambda item: -item[2]))


@lru_cache(maxsize=4096)
def code_of(said: Optional[str]) -> Optional[str]:
    """The code of the catalogue template `said` was rendered from, None when it is none of them
    (a sentence written before the catalogue, or not from it). Stored incidents and journal lines
    keep their text; this gives programs their stable code back. Two templates that render the same
    text cannot be told apart: the one with more fixed words wins."""
    if not said:
        return None
    for code, pattern, _ in _patterns():
        if pattern.fullmatch(said):
            return code
    return None
