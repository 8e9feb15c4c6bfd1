#!/usr/bin/env python
"""For developers: measure the aligners' word-start accuracy on speech whose true timings are known.

espeak-ng (libespeak-ng bundled by espeakng-loader) speaks each sentence and
reports a word event with the exact sample where each word starts. Events
can skip words, so they are matched to our tokens by text position, and
tokens without an event are left out of the figures. The test speech is
spoken in a voice variant, rate and pitch (TEST_VOICE) other than the
rendering the dtw aligner warps onto (the language's default voice at a
matched rate), so dtw does not meet its own reference. The aligner runs
through ``f5_worker.alignment.quality.align_audio``, the same call the
``align`` action makes.

    uv run python scripts/bench/eval_alignment.py [--language en|fr|de|es|it|pt|all]
        [--method sphinx|dtw|estimate|ctc|auto|all] [--held-out | --dev-set] [--no-onsets] [--limit N]
        [--json FILE]

``--method all`` runs every method that applies: sphinx for English only, ctc
only where its weights are cached. ``--held-out`` measures the sentences kept
out of development instead. ``--dev-set`` measures where word starts go wrong:
the development sentences spoken in pieces after 0-300 ms of leading silence and
0.2-1.5 s pauses, dry, in a simulated room, with a breath before each piece and
in pink or babble noise at 30, 20 and 10 dB SNR, and each spoken whole without a
pause, with figures per condition for the first word, words after a pause, the
others and the ends of words before a pause (``dev_cases``; the other sets print
them too). ``--no-onsets`` turns
off sphinx's and dtw's pass that moves boundaries at pauses to where the sound
rises and falls, to measure what it adds. All the test speech is made before
anything is aligned, from a fixed seed: the same command gives the same figures.

Changes: nothing but the --json report, where told.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from f5_worker.alignment import espeak
from f5_worker.alignment.ctc import CtcAligner, find_weights
from f5_worker.alignment.dtw import espeak_voice
from f5_worker.alignment.quality import align_audio
from f5_worker.alignment.selection import load_aligner
from f5_worker.text.tokens import tokenize

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.",
    "We also need a small plastic snake and a big toy frog for the kids.",
    "Doctor Smith arrived at the hospital at 7 in the morning.",
    "In 1999, the company had 250 employees; today it has 4000.",
    "The meeting starts at 10:30 on the 21st of March.",
    "Mr. Johnson and Mrs. Patel flew from London to Tokyo last Tuesday.",
    "Is this the right way to the station? I think so!",
    "Wait... did you hear that noise?",
    "The temperature dropped to 3.5 degrees overnight.",
    "Alice, Bob, and Charlie went to the market together.",
    "He said, \"I will never forget this day.\"",
    "Our team scored 42 points in the first half and 17 in the second.",
    "Elizabeth Warren met Barack Obama in Washington.",
    "The library opens at nine and closes at five.",
    "Could you pass me the salt, please?",
    "Rain, wind, and snow: the mountain saw it all.",
    "Katherine bought 12 apples, 7 oranges, and 3 melons.",
    "The speed of light is about 300000 kilometers per second.",
    "Professor Nguyen teaches physics at the university.",
    "Nobody expected the river to flood so quickly.",
    "The 3rd chapter is the longest one in the book.",
    "Turn left at the second light, then go straight for 2 miles.",
    "My phone number ends in 4 5 6 7.",
    "Paris, Berlin, Madrid, and Rome are European capitals.",
    "The concert was amazing; the crowd sang every song.",
    "Jennifer's dog barked at the mailman again.",
    "We don't know where they're going, but they'll be back soon.",
    "Thomas Edison held more than 1000 patents.",
    "Keep calm and carry on.",
    "Why would anyone leave such a beautiful place?",
    "The recipe calls for 2 cups of flour and 1 egg.",
    "Mount Everest is 8849 meters tall.",
    "Sarah whispered something, and everyone laughed.",
    "The train to Edinburgh leaves from platform 9.",
    "Honestly, I never liked winter very much.",
    "Gabriel Garcia Marquez wrote wonderful novels.",
    "Each student received a certificate and a small gift.",
    "Stop! Don't touch that button.",
    "The price rose by 15 percent in 2021.",
    "Oliver and Sophia are planning a trip to Iceland.",
    "Bright stars filled the clear night sky.",
    "A thousand tiny lights flickered across the valley.",
    "Our flight was delayed by 45 minutes because of fog.",
    "William Shakespeare was born in 1564.",
    "Michelle counted to 20 and then opened her eyes.",
    "Yes, no, maybe: those were the only answers.",
    "The old lighthouse still guides ships home at night.",
    "Listen carefully, because I will only say this once.",
    "Fourteen ducks swam slowly across the pond.",
]

PARAGRAPH = (
    "Long before the first railway crossed the plains, small towns grew wherever water and trade could be found. "
    "Farmers brought grain to the markets each autumn, and merchants from distant cities arrived with cloth, tools, "
    "and news. In 1869, when the tracks finally connected the two coasts, the journey that once took months could be "
    "made in about a week. Some towns flourished almost overnight; others, bypassed by the line, slowly faded away. "
    "Historians still argue about who benefited most, but nobody doubts that the country was changed forever."
)

CORPUS = SENTENCES + [PARAGRAPH]

# Sentences per language for the measurement (English: SENTENCES and PARAGRAPH above).
LANGUAGE_SENTENCES = {
    "fr": [
        "Le petit chat dort tranquillement sur le canapé du salon.",
        "Nous irons au marché demain matin, s'il ne pleut pas.",
        "Pourquoi as-tu laissé la porte ouverte ?",
        "Marie a trouvé un vieux livre dans le grenier de sa grand-mère.",
        "Le train pour Lyon partira avec vingt minutes de retard.",
        "En 1998, la France a gagné la Coupe du monde.",
        "Il y a 365 jours dans une année ordinaire.",
        "Les feuilles tombent des arbres à l'automne.",
        "Écoute bien : je ne le répéterai pas deux fois.",
        "Jean-Pierre et Sophie se sont mariés au printemps.",
        "La tour Eiffel mesure environ trois cents mètres.",
        "Quel temps fera-t-il ce week-end à la montagne ?",
        "Mon voisin joue du piano tous les soirs après le dîner.",
        "Il faut acheter du pain, du beurre et des œufs.",
        "Le musée ferme ses portes à dix-huit heures.",
        "Les étudiants ont révisé toute la nuit pour l'examen.",
        "Arrête ! Tu vas réveiller le bébé.",
        "Nous avons vu des dauphins au large de la Bretagne.",
        "Cette recette demande 250 grammes de farine.",
        "Le médecin lui a conseillé de se reposer quelques jours.",
        "Où se trouve la bibliothèque municipale, s'il vous plaît ?",
        "Hier soir, l'orage a coupé l'électricité dans tout le quartier.",
        "Le renard rusé s'approcha doucement du poulailler.",
        "Paul travaille dans une banque depuis douze ans.",
        "Je préfère le thé au café, surtout le matin.",
        "La conférence commencera à 9 h 30 précises.",
        "Les montagnes étaient couvertes d'une neige épaisse.",
        "Elle chantait une vieille chanson en épluchant les légumes.",
        "Combien coûte ce manteau bleu dans la vitrine ?",
        "Nous partirons en vacances au bord de la mer en juillet.",
    ],
    "de": [
        "Der alte Mann ging langsam über die schmale Brücke.",
        "Morgen fahren wir mit dem Zug nach München.",
        "Kannst du mir bitte das Salz reichen?",
        "Im Jahr 1989 fiel die Berliner Mauer.",
        "Die Kinder spielen im Garten Fußball.",
        "Unser Hund bellt jeden Morgen den Briefträger an.",
        "Das Konzert beginnt um acht Uhr abends.",
        "Ich habe 42 Euro für die neuen Schuhe bezahlt.",
        "Warum ist der Himmel heute so grau?",
        "Anna und Peter wohnen seit drei Jahren in Wien.",
        "Der Rhein ist einer der längsten Flüsse Europas.",
        "Nach dem Essen gehen wir im Park spazieren.",
        "Halt! Du hast deinen Regenschirm vergessen.",
        "Die Lehrerin erklärte die Aufgabe noch einmal geduldig.",
        "Auf dem Markt kaufen wir Äpfel, Birnen und Käse.",
        "Es schneite die ganze Nacht in den Alpen.",
        "Mein Großvater erzählt gern Geschichten aus seiner Jugend.",
        "Der Flug nach Berlin wurde wegen Nebels gestrichen.",
        "Wie viele Sprachen sprichst du eigentlich?",
        "Das Rathaus steht mitten auf dem Marktplatz.",
        "Sie las den Brief dreimal, bevor sie antwortete.",
        "Die Brücke wurde im Jahr 1875 gebaut.",
        "Wir brauchen noch Milch, Brot und ein paar Eier.",
        "Der Fuchs schlich leise durch den dunklen Wald.",
        "Mein Bruder arbeitet als Ingenieur in Stuttgart.",
        "Bitte schließen Sie die Tür hinter sich.",
        "Im Herbst färben sich die Blätter rot und gelb.",
        "Das Museum ist montags geschlossen.",
        "Die Katze schläft am liebsten auf dem warmen Ofen.",
        "Um halb sieben klingelte endlich das Telefon.",
    ],
    "es": [
        "El perro duerme tranquilo bajo la mesa de la cocina.",
        "Mañana iremos a la playa si hace buen tiempo.",
        "¿Dónde está la estación de autobuses?",
        "María encontró una carta antigua en el desván.",
        "El tren a Madrid saldrá con media hora de retraso.",
        "En 1992, Barcelona organizó los Juegos Olímpicos.",
        "Un año normal tiene 365 días.",
        "Las hojas caen de los árboles en otoño.",
        "¡Escucha bien, porque no lo repetiré!",
        "Juan y Lucía se casaron en primavera.",
        "La catedral tiene más de quinientos años.",
        "¿Qué tiempo hará este fin de semana en la sierra?",
        "Mi vecino toca la guitarra todas las noches.",
        "Hay que comprar pan, mantequilla y huevos.",
        "El museo cierra sus puertas a las seis de la tarde.",
        "Los estudiantes repasaron toda la noche para el examen.",
        "Para ya, vas a despertar al bebé.",
        "Vimos delfines cerca de la costa de Galicia.",
        "La receta pide 200 gramos de harina.",
        "El médico le aconsejó descansar unos días.",
        "Perdone, ¿sabe dónde está la biblioteca?",
        "Anoche la tormenta cortó la luz en todo el barrio.",
        "El zorro se acercó despacio al gallinero.",
        "Pablo trabaja en un banco desde hace doce años.",
        "Prefiero el té al café, sobre todo por la mañana.",
        "La conferencia empezará a las nueve y media.",
        "Las montañas estaban cubiertas de nieve espesa.",
        "Ella cantaba una canción antigua mientras pelaba patatas.",
        "¿Cuánto cuesta ese abrigo azul del escaparate?",
        "En julio nos iremos de vacaciones al mar.",
    ],
    "it": [
        "Il gatto dorme tranquillo sul divano del salotto.",
        "Domani andremo al mercato se non piove.",
        "Perché hai lasciato la finestra aperta?",
        "Giulia ha trovato un vecchio libro in soffitta.",
        "Il treno per Roma partirà con venti minuti di ritardo.",
        "Nel 2006 l'Italia vinse la Coppa del Mondo.",
        "Un anno normale ha 365 giorni.",
        "Le foglie cadono dagli alberi in autunno.",
        "Ascolta bene: non lo ripeterò due volte.",
        "Marco e Francesca si sono sposati in primavera.",
        "Il Colosseo ha quasi duemila anni.",
        "Che tempo farà questo fine settimana in montagna?",
        "Il mio vicino suona il pianoforte ogni sera.",
        "Bisogna comprare pane, burro e uova.",
        "Il museo chiude alle sei del pomeriggio.",
        "Gli studenti hanno studiato tutta la notte per l'esame.",
        "Basta! Svegli il bambino.",
        "Abbiamo visto dei delfini al largo della Sardegna.",
        "La ricetta richiede 300 grammi di farina.",
        "Il medico gli ha consigliato di riposare qualche giorno.",
        "Scusi, sa dov'è la biblioteca comunale?",
        "Ieri sera il temporale ha tolto la corrente in tutto il quartiere.",
        "La volpe si avvicinò piano al pollaio.",
        "Paolo lavora in banca da dodici anni.",
        "Preferisco il tè al caffè, soprattutto la mattina.",
        "La conferenza inizierà alle nove e mezza.",
        "Le montagne erano coperte di neve fresca.",
        "Lei cantava una vecchia canzone mentre sbucciava le patate.",
        "Quanto costa quel cappotto blu in vetrina?",
        "A luglio andremo in vacanza al mare.",
    ],
    "pt": [
        "O gato dorme tranquilo no sofá da sala.",
        "Amanhã vamos ao mercado se não chover.",
        "Porque deixaste a janela aberta?",
        "A Joana encontrou um livro antigo no sótão.",
        "O comboio para Lisboa vai partir com vinte minutos de atraso.",
        "Em 1998, Lisboa recebeu a Exposição Mundial.",
        "Um ano normal tem 365 dias.",
        "As folhas caem das árvores no outono.",
        "Ouve bem: não vou repetir.",
        "O Pedro e a Marta casaram-se na primavera.",
        "O mosteiro tem mais de quinhentos anos.",
        "Que tempo vai fazer este fim de semana na serra?",
        "O meu vizinho toca guitarra todas as noites.",
        "É preciso comprar pão, manteiga e ovos.",
        "O museu fecha às seis da tarde.",
        "Os estudantes estudaram a noite toda para o exame.",
        "Para com isso! Vais acordar o bebé.",
        "Vimos golfinhos perto da costa do Algarve.",
        "A receita pede 250 gramas de farinha.",
        "O médico aconselhou-o a descansar alguns dias.",
        "Desculpe, sabe onde fica a biblioteca municipal?",
        "Ontem à noite a tempestade cortou a luz em todo o bairro.",
        "A raposa aproximou-se devagar do galinheiro.",
        "O Paulo trabalha num banco há doze anos.",
        "Prefiro chá a café, sobretudo de manhã.",
        "A conferência começa às nove e meia.",
        "As montanhas estavam cobertas de neve espessa.",
        "Ela cantava uma canção antiga enquanto descascava batatas.",
        "Quanto custa aquele casaco azul da montra?",
        "Em julho vamos de férias para a praia.",
    ],
}

# Sentences kept out of development: measured once, at the end.
HELD_OUT = {
    "en": [
        "The fisherman mended his nets while the gulls circled overhead.",
        "Did anyone remember to lock the back door last night?",
        "Twenty-three volunteers planted 480 trees along the river.",
        "Margaret's cousin moved to Vancouver in 2015.",
        "Quiet, please: the exam begins in five minutes.",
        "A gentle breeze carried the scent of pine through the open window.",
        "He paid $18.75 for two tickets and a bag of popcorn.",
        "Under the bridge, a pair of otters played in the current.",
        "Nobody could explain why the clock stopped at midnight.",
        "Bring a jacket, some water, and a map of the trail.",
        "The committee postponed its decision until next spring.",
        "Grandfather told stories about the winter of 1947.",
    ],
    "fr": [
        "Le boulanger ouvre sa boutique avant le lever du soleil.",
        "Avez-vous déjà visité le musée d'Orsay ?",
        "Nous avons parcouru 35 kilomètres à vélo dimanche dernier.",
        "La pluie tombait doucement sur les toits de la vieille ville.",
        "Mon frère cherche un appartement près de la gare.",
        "Attention : le dernier train part à 23 heures.",
        "Les enfants jouaient dans le jardin pendant que leurs parents discutaient.",
        "Elle a acheté trois kilos de pommes et une bouteille de cidre.",
        "Pourquoi le chien aboie-t-il toutes les nuits ?",
        "Victor Hugo est né à Besançon en 1802.",
        "Le vent du nord a soufflé toute la semaine.",
        "Il faut arroser les tomates le soir, pas à midi.",
    ],
    "de": [
        "Der Bäcker öffnet seinen Laden schon um fünf Uhr morgens.",
        "Hast du den Schlüssel für den Keller gesehen?",
        "Im Sommer wandern wir gern durch die Berge Tirols.",
        "Die Bibliothek hat mehr als 20000 Bücher.",
        "Meine Schwester lernt seit zwei Jahren Geige.",
        "Vorsicht: Die Straße ist nach dem Regen sehr glatt.",
        "Am Wochenende besuchen wir unsere Großeltern in Hamburg.",
        "Warum hat niemand das Fenster geschlossen?",
        "Der Zug nach Köln hat heute zwanzig Minuten Verspätung.",
        "Goethe schrieb den Faust über viele Jahre hinweg.",
        "Kinder, räumt bitte euer Zimmer auf!",
        "Ein kleiner Vogel saß auf dem Zaun und sang.",
    ],
    "es": [
        "El panadero abre la tienda antes del amanecer.",
        "¿Has visto mis gafas encima de la mesa?",
        "Caminamos 12 kilómetros por la orilla del río.",
        "La abuela prepara una paella deliciosa los domingos.",
        "Cuidado: el suelo de la cocina está mojado.",
        "Los niños corrían por la plaza mientras sonaban las campanas.",
        "Miguel de Cervantes publicó su novela en 1605.",
        "Necesitamos pan, leche, huevos y un poco de queso.",
        "¿Por qué nadie contestó el teléfono esta mañana?",
        "El tren hacia Sevilla sale del andén número tres.",
        "Mi hermana estudia medicina en la universidad de Granada.",
        "Una tormenta repentina cubrió el valle de niebla.",
    ],
    "it": [
        "Il fornaio apre il negozio prima dell'alba.",
        "Hai visto le chiavi della macchina?",
        "Abbiamo camminato per 18 chilometri lungo la costa.",
        "La nonna prepara le lasagne ogni domenica.",
        "Attenzione: il pavimento del bagno è bagnato.",
        "I bambini giocavano in piazza mentre suonavano le campane.",
        "Dante Alighieri nacque a Firenze nel 1265.",
        "Ci servono pane, latte, uova e un po' di formaggio.",
        "Perché nessuno ha risposto al telefono stamattina?",
        "Il treno per Napoli parte dal binario quattro.",
        "Mio fratello studia ingegneria al politecnico di Milano.",
        "Un temporale improvviso coprì la valle di nebbia.",
    ],
    "pt": [
        "O padeiro abre a loja antes do nascer do sol.",
        "Viste os meus óculos em cima da mesa?",
        "Caminhámos 15 quilómetros ao longo da praia.",
        "A avó prepara um bacalhau delicioso todos os domingos.",
        "Cuidado: o chão da cozinha está molhado.",
        "As crianças corriam pela praça enquanto os sinos tocavam.",
        "Luís de Camões publicou Os Lusíadas em 1572.",
        "Precisamos de pão, leite, ovos e um pouco de queijo.",
        "Porque é que ninguém atendeu o telefone esta manhã?",
        "O comboio para o Porto parte da linha número dois.",
        "A minha irmã estuda medicina na universidade de Coimbra.",
        "Uma tempestade repentina cobriu o vale de nevoeiro.",
    ],
}

LANGUAGES = ("en", "fr", "de", "es", "it", "pt")
METHODS = ("sphinx", "dtw", "estimate", "ctc", "auto")
# The test speech's voice: a female variant, slower and lower than espeak-ng's defaults (175 wpm, pitch 50),
# which the dtw aligner's reference uses.
TEST_VOICE = {"variant": "f3", "rate_wpm": 140, "pitch": 30}

# The development set (``--dev-set``): where word starts go wrong. Each development sentence is spoken in
# pieces, with silence before the first piece and between pieces, then heard dry, in a room and in noise.
# The held-out sentences are never used.
DEV_VARIANTS = ("f2", "f3", "m3", "m7", "klatt3")  # espeak-ng voice variants, one drawn per sentence
DEV_RATE_WPM = (130, 210)  # words a minute, drawn uniformly per sentence
DEV_PITCH = (30, 70)  # espeak-ng base pitch (0-100), drawn uniformly per sentence
DEV_LEAD_S = (0.0, 0.3)  # s: silence before the first word, drawn uniformly
DEV_PAUSE_S = (0.2, 1.5)  # s: silence between pieces, drawn log-uniformly
DEV_PIECES = (2, 3)  # pieces a sentence is spoken in, drawn (fewer where it has too few words)
MIN_PIECE_WORDS = 2  # words in a piece, at least
# breath: a breath in the silence before each piece; noiseN: N dB signal-to-noise ratio; whole: the sentence
# spoken as one utterance, without added silence
DEV_CONDITIONS = ("clean", "reverb", "breath", "noise30", "noise20", "noise10", "whole")
DEV_BREATH_S = (0.15, 0.4)  # s: a breath's length, drawn uniformly (shortened to fit its silence)
DEV_BREATH_GAP_S = (0.05, 0.25)  # s: silence between a breath and the speech after it, drawn uniformly
DEV_BREATH_DB = (-35.0, -25.0)  # dB: a breath's level against the speech's, drawn uniformly
BREATH_AFTER_SOUND_S = 0.05  # s: quiet kept between the sound before a breath and the breath
MIN_DEV_BREATH_S = 0.1  # s: a breath shortened to fit its silence is left out below this
DEV_WHOLE_RATE_WPM = (100, 210)  # words a minute of a sentence spoken whole, drawn uniformly (slow: long closures)
DEV_RT60_S = (0.2, 0.6)  # s: the simulated room's reverberation time, drawn uniformly
DEV_DRR_DB = (3.0, 10.0)  # dB: direct sound over the reverberation, drawn uniformly
BABBLE_TALKERS = 6  # voices speaking other sentences at once, for babble noise (every other sentence)
ACTIVE_DB = -40.0  # dB below the loudest 10 ms: quieter frames do not count in the speech level for the SNR
SILENT_DB = -50.0  # dB below a piece's loudest millisecond: silence in the dry rendering
PAUSE_BEFORE_S = 0.15  # s: a word with at least this much silence before it is a word after a pause
DEV_SEED = 29
MODES = ("first", "pause", "other")  # the utterance's first word, a word after a pause, any other word


def corpus(language: str, held_out: bool = False) -> list[str]:
    if held_out:
        return HELD_OUT[language]
    return CORPUS if language == "en" else LANGUAGE_SENTENCES[language]


@dataclass
class Case:
    text: str
    audio: np.ndarray
    sample_rate: int
    truth: dict[int, float]  # token index -> true start (s)
    language: str = "en"
    # Development set only: token index -> where the word is (one of MODES), and for a word before a pause
    # (or the last), token index -> true end (s); the condition the audio was heard in (DEV_CONDITIONS).
    modes: dict[int, str] = field(default_factory=dict)
    ends: dict[int, float] = field(default_factory=dict)
    condition: str = "clean"


def make_case(text: str, language: str = "en", *, variant: str | None = None,
              rate_wpm: int = espeak.DEFAULT_RATE_WPM, pitch: int = espeak.DEFAULT_PITCH) -> Case:
    """Speak ``text`` and take each token's true start from the word event at its first letter (and where
    each word is, ``_places``)."""
    voice = espeak_voice(language) + (f"+{variant}" if variant else "")
    audio, sr, events = espeak.synthesize(text, voice=voice, rate_wpm=rate_wpm, pitch=pitch)
    at_position: dict[int, float] = {}
    for ev in events:
        at_position.setdefault(ev.text_position, ev.sample / sr)
    truth = {}
    for i, tok in enumerate(tokenize(text, language)):
        first = next((p for p in range(tok.char_start, tok.char_end) if text[p].isalnum()), None)
        if tok.spoken and first is not None and first in at_position:
            truth[i] = at_position[first]
    return Case(text, audio, sr, truth, language, *_places(audio, sr, truth))


def main_cases(language: str, args: argparse.Namespace) -> list[Case]:
    """The sentences ``args`` ask for (development or held out, ``--limit``), each spoken once whole."""
    texts = corpus(language, args.held_out)
    return [make_case(t, language, **TEST_VOICE) for t in (texts[: args.limit] if args.limit else texts)]


def dev_cases(language: str, limit: int | None = None) -> list[Case]:
    """The development set for ``language``: every condition of every development sentence, in that order.

    Each sentence is cut between words into pieces, each spoken as its own utterance (in a voice variant,
    rate and pitch drawn for the sentence), with silence before the first and between them. Starts come
    from the word events, as in ``make_case``; ends are where the dry rendering last sounds before a
    pause. The ``breath`` condition adds a breath in the silence before each piece (``_with_breaths``). The
    sentence is also spoken whole, dry, as one utterance with no silence added (``whole``): the
    speech a pause finder must leave alone, with its stops' silent closures and weak consonants.
    Deterministic for a given espeak-ng (``DEV_SEED``).
    """
    texts = [t for t in corpus(language) if t != PARAGRAPH]
    texts = texts[:limit] if limit else texts
    cases = []
    for n, text in enumerate(texts):
        rng = np.random.default_rng([DEV_SEED, n, LANGUAGES.index(language)])
        dry = _dev_utterance(text, language, rng)
        babble = n % 2 == 1
        noise = _babble(len(dry.audio), dry.sample_rate, language, rng) if babble else _pink(len(dry.audio), rng)
        room = _room(dry.sample_rate, rng)
        for condition in DEV_CONDITIONS:
            if condition == "whole":
                whole = _dev_utterance(text, language, rng, whole=True)
                cases.append(Case(text, whole.audio, whole.sample_rate, whole.truth, language, whole.modes,
                                  whole.ends, condition))
                continue
            if condition == "clean":
                audio = dry.audio
            elif condition == "breath":
                audio = _with_breaths(dry, np.random.default_rng([DEV_SEED, n, LANGUAGES.index(language), 1]))
            elif condition == "reverb":
                audio = _reverberate(dry.audio, room)
            else:
                audio = _add_noise(dry.audio, dry.sample_rate, noise, float(condition.removeprefix("noise")))
            cases.append(Case(text, audio.astype(np.float32), dry.sample_rate, dry.truth, language,
                              dry.modes, dry.ends, condition))
    return cases


def _dev_utterance(text: str, language: str, rng: np.random.Generator, *, whole: bool = False) -> Case:
    """``text`` spoken in pieces with silences between, or ``whole`` as one utterance, dry, with its truth
    (see ``dev_cases``)."""
    tokens = tokenize(text, language)
    variant = DEV_VARIANTS[rng.integers(len(DEV_VARIANTS))]
    rates = DEV_WHOLE_RATE_WPM if whole else DEV_RATE_WPM
    rate = int(rng.integers(rates[0], rates[1] + 1))
    pitch = int(rng.integers(DEV_PITCH[0], DEV_PITCH[1] + 1))
    n_pieces = min(int(rng.integers(DEV_PIECES[0], DEV_PIECES[1] + 1)), max(1, len(tokens) // MIN_PIECE_WORDS))
    n_pieces = 1 if whole else n_pieces
    # Cuts between tokens, after punctuation where there is some (where a speaker pauses), else anywhere.
    allowed = [i for i in range(MIN_PIECE_WORDS, len(tokens) - MIN_PIECE_WORDS + 1)]
    cuts: list[int] = []
    for _ in range(n_pieces - 1):
        free = [i for i in allowed if all(abs(i - c) >= MIN_PIECE_WORDS for c in cuts)]
        if not free:
            break
        marked = [i for i in free if not tokens[i - 1].text[-1].isalnum()]
        pool = marked or free
        cuts.append(pool[rng.integers(len(pool))])
    bounds = [0, *sorted(cuts), len(tokens)]
    voice = espeak_voice(language) + f"+{variant}"
    sr = None
    parts: list[np.ndarray] = []
    at_position: dict[int, float] = {}
    offset = 0
    lead = 0.0 if whole else rng.uniform(*DEV_LEAD_S)
    for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        lo, hi = tokens[a].char_start, tokens[b - 1].char_end
        audio, sr, events = espeak.synthesize(text[lo:hi], voice=voice, rate_wpm=rate, pitch=pitch)
        audio = audio[: _last_sound(audio, sr)]
        silence = lead if k == 0 else float(np.exp(rng.uniform(*np.log(DEV_PAUSE_S))))
        parts.append(np.zeros(int(round(silence * sr)), np.float32))
        offset += len(parts[-1])
        for ev in events:
            at_position.setdefault(lo + ev.text_position, (offset + ev.sample) / sr)
        parts.append(audio)
        offset += len(audio)
    dry = np.concatenate(parts)
    truth = {}
    for i, tok in enumerate(tokens):
        first = next((p for p in range(tok.char_start, tok.char_end) if text[p].isalnum()), None)
        if tok.spoken and first is not None and first in at_position:
            truth[i] = at_position[first]
    return Case(text, dry, sr, truth, language, *_places(dry, sr, truth))


def _places(audio: np.ndarray, sample_rate: int, truth: dict[int, float]) -> tuple[dict[int, str], dict[int, float]]:
    """Where each timed word of dry speech is (one of MODES), and the true end of each word before a pause
    (nothing sounds in the PAUSE_BEFORE_S after its sound) and of the last word."""
    sounding = _sounding_ms(audio, sample_rate)
    modes, ends = {}, {}
    ordered = sorted(truth)
    for n, i in enumerate(ordered):
        ms = int(truth[i] * 1000)
        before = sounding[max(0, ms - int(PAUSE_BEFORE_S * 1000)) : ms]
        modes[i] = "first" if n == 0 else "pause" if not before.any() else "other"
        nxt = int(truth[ordered[n + 1]] * 1000) if n + 1 < len(ordered) else len(sounding)
        sound = np.flatnonzero(sounding[ms:nxt])
        if len(sound) and (nxt - (ms + sound[-1] + 1)) >= PAUSE_BEFORE_S * 1000 or n + 1 == len(ordered):
            ends[i] = (ms + (sound[-1] + 1 if len(sound) else 0)) / 1000
    return modes, ends


def _sounding_ms(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per millisecond of a dry rendering: louder than ``SILENT_DB`` below its loudest millisecond."""
    ms = np.arange(len(audio)) * 1000 // sample_rate  # each sample's millisecond (22.05 samples at 22050 Hz)
    n = int(ms[-1]) + 1 if len(audio) else 0
    power = np.bincount(ms, np.square(audio, dtype=np.float64), n) / np.maximum(np.bincount(ms, None, n), 1)
    energy = 10 * np.log10(power + 1e-12)
    return energy > energy.max() + SILENT_DB if n else np.zeros(0, dtype=bool)


def _last_sound(audio: np.ndarray, sample_rate: int) -> int:
    """The sample after a rendering's last sounding millisecond (its trailing silence is dropped)."""
    loud = np.flatnonzero(_sounding_ms(audio, sample_rate))
    return min(len(audio), -(-(int(loud[-1]) + 1) * sample_rate // 1000)) if len(loud) else len(audio)


def _speech_power(audio: np.ndarray, sample_rate: int) -> float:
    """Mean square over the 10 ms frames within ``ACTIVE_DB`` of the loudest: the speech level for an SNR."""
    hop = sample_rate // 100
    n = len(audio) // hop
    power = np.mean(np.square(audio[: n * hop].reshape(n, hop), dtype=np.float64), axis=1)
    return float(power[power > power.max() * 10 ** (ACTIVE_DB / 10)].mean())


def _with_breaths(dry: Case, rng: np.random.Generator) -> np.ndarray:
    """``dry``'s audio with a breath in the silence before each piece (before the first word and each word
    after a pause), ending a drawn gap before the word: noise tilted towards the high frequencies, as a
    breath through the mouth is, rising and falling smoothly. Where the silence is too short, none."""
    audio = dry.audio.astype(np.float64).copy()
    sr = dry.sample_rate
    sounding = _sounding_ms(dry.audio, sr)
    level = np.sqrt(_speech_power(dry.audio, sr))
    for i in sorted(dry.truth):
        if dry.modes.get(i) not in ("first", "pause"):
            continue
        onset_ms = int(dry.truth[i] * 1000)
        before = np.flatnonzero(sounding[:onset_ms])
        silent_s = (onset_ms - (before[-1] + 1 if len(before) else 0)) / 1000
        gap = rng.uniform(*DEV_BREATH_GAP_S)
        length = min(rng.uniform(*DEV_BREATH_S), silent_s - gap - BREATH_AFTER_SOUND_S)
        db = rng.uniform(*DEV_BREATH_DB)
        if length < MIN_DEV_BREATH_S:
            continue
        n = int(length * sr)
        breath = np.diff(_pink(n + 1, rng)) * np.sqrt(np.hanning(n))
        breath *= level * 10 ** (db / 20) / np.sqrt(np.mean(breath**2))
        end = int((dry.truth[i] - gap) * sr)
        audio[end - n : end] += breath
    return audio


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f) noise, ``n`` samples."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    return np.fft.irfft(spectrum, n)


def _babble(n: int, sample_rate: int, language: str, rng: np.random.Generator) -> np.ndarray:
    """``BABBLE_TALKERS`` voices saying other development sentences at once, each looped to ``n`` samples."""
    texts = [t for t in corpus(language) if t != PARAGRAPH]
    out = np.zeros(n)
    for _ in range(BABBLE_TALKERS):
        variant = DEV_VARIANTS[rng.integers(len(DEV_VARIANTS))]
        audio, sr, _ = espeak.synthesize(texts[rng.integers(len(texts))], voice=espeak_voice(language) + f"+{variant}",
                                          rate_wpm=int(rng.integers(*DEV_RATE_WPM)), pitch=int(rng.integers(*DEV_PITCH)))
        assert sr == sample_rate
        audio = np.tile(audio, n // max(len(audio), 1) + 2)
        start = int(rng.integers(len(audio) - n))
        out += audio[start : start + n] / np.sqrt(_speech_power(audio, sr))
    return out


def _add_noise(audio: np.ndarray, sample_rate: int, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``audio`` with ``noise`` added ``snr_db`` below its speech level (``_speech_power``)."""
    gain = np.sqrt(_speech_power(audio, sample_rate) / np.mean(np.square(noise)) / 10 ** (snr_db / 10))
    return _fit(audio + gain * noise)


def _room(sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A room's impulse response: the direct sound, then exponentially decaying noise (``DEV_RT60_S``,
    ``DEV_DRR_DB``)."""
    rt60 = rng.uniform(*DEV_RT60_S)
    t = np.arange(int(rt60 * sample_rate)) / sample_rate
    tail = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: sample_rate // 1000] = 0.0  # the first reflection arrives after a millisecond
    tail *= np.sqrt(10 ** (-rng.uniform(*DEV_DRR_DB) / 10) / np.sum(np.square(tail)))
    tail[0] = 1.0
    return tail


def _reverberate(audio: np.ndarray, room: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    return _fit(fftconvolve(audio, room)[: len(audio)])


def _fit(audio: np.ndarray) -> np.ndarray:
    """Scaled down where it would clip."""
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    return audio / peak * 0.99 if peak > 0.99 else audio


def evaluate(aligner, cases: list[Case]) -> dict:
    errors: list[float] = []
    signed: list[float] = []
    align_s = cpu_s = audio_s = 0.0
    worst: list[tuple[float, str, str]] = []
    by_mode: dict[str, list[float]] = {}
    end_errors: list[float] = []
    for case in cases:
        t0, c0 = time.perf_counter(), time.thread_time()
        result = align_audio(aligner, case.audio, case.sample_rate, case.text, language=case.language)
        align_s += time.perf_counter() - t0
        cpu_s += time.thread_time() - c0
        audio_s += len(case.audio) / case.sample_rate
        for i, true_start in case.truth.items():
            signed.append(result.words[i].start - true_start)
            err = abs(signed[-1])
            errors.append(err)
            worst.append((err, result.words[i].text, case.text[:40]))
            if i in case.modes:
                by_mode.setdefault(case.modes[i], []).append(err)
        end_errors.extend(abs(result.words[i].end - true_end) for i, true_end in case.ends.items())
    err = np.array(errors)
    worst.sort(reverse=True)
    return {
        **({"modes": {mode: error_figures(by_mode[mode]) for mode in MODES if mode in by_mode},
            "ends": error_figures(end_errors)} if by_mode else {}),
        "words": int(len(err)),
        "sentences": len(cases),
        "mean_abs_ms": round(float(err.mean() * 1000), 2) if len(err) else None,
        "median_abs_ms": round(float(np.median(err) * 1000), 2) if len(err) else None,
        "p90_abs_ms": round(float(np.percentile(err, 90) * 1000), 2) if len(err) else None,
        "mean_signed_ms": round(float(np.mean(signed) * 1000), 2) if signed else None,
        "within_20ms": round(float((err <= 0.020).mean() * 100), 2) if len(err) else None,
        "within_50ms": round(float((err <= 0.050).mean() * 100), 2) if len(err) else None,
        "align_rtf": round(align_s / audio_s, 4) if audio_s else None,
        # CPU time of the aligning thread: the one-core cost even when other work shares the machine.
        "align_cpu_rtf": round(cpu_s / audio_s, 4) if audio_s else None,
        "audio_seconds": round(audio_s, 2),
        "backend": getattr(aligner, "name", "?"),
        "language": cases[0].language if cases else None,
        "worst": [{"error_ms": round(e * 1000, 1), "word": w, "sentence": s} for e, w, s in worst[:10]],
    }


def error_figures(errors: list[float]) -> dict:
    """Mean, worst and the shares within 20 and 50 ms of absolute errors in seconds (figures in ms and %)."""
    err = np.array(errors)
    if not len(err):
        return {"words": 0}
    return {"words": int(len(err)), "mean_abs_ms": round(float(err.mean() * 1000), 2),
            "within_20ms": round(float((err <= 0.020).mean() * 100), 2),
            "within_50ms": round(float((err <= 0.050).mean() * 100), 2),
            "max_abs_ms": round(float(err.max() * 1000), 1)}


def methods_for(language: str, asked: str) -> list[str]:
    """The methods ``--method`` names for a language: sphinx is English only, ctc needs cached weights."""
    if asked != "all":
        return [asked]
    found = [m for m in ("sphinx", "dtw", "estimate") if m != "sphinx" or language == "en"]
    if find_weights(None, "en" if language == "en" else "mul"):
        found.append("ctc")
    return found


def aligner_for(method: str, language: str, onsets: bool = True):
    """The aligner ``method`` names; ``onsets`` False: sphinx or dtw without their pass that moves boundaries
    to where the sound rises and falls (``f5_worker.alignment.onsets``), to measure what it adds."""
    if method == "ctc" and language != "en":
        return CtcAligner(multilingual=True)
    return load_aligner(method, onsets=onsets)


def report_dev_set(aligner, cases: list[Case], method: str) -> list[dict]:
    """Figures per condition of the development set, printed as a table: start errors of all words, the
    first word, words after a pause and the others, then end errors of words before a pause."""
    language = cases[0].language
    print(f"{language} {method} (backend {getattr(aligner, 'name', '?')}), development set: "
          f"{len({c.text for c in cases})} sentences")
    print("  condition  words |  all words  |    first    | after pause |    other    | end before pause"
          "   (mean ms, % within 20/50 ms, worst ms)")

    def cell(f: dict) -> str:
        return f"{f['mean_abs_ms']:5.1f} {f['within_20ms']:3.0f}/{f['within_50ms']:3.0f} {f['max_abs_ms']:4.0f}" \
            if f.get("words") else " " * 18

    results = []
    for condition in DEV_CONDITIONS:
        figures = evaluate(aligner, [c for c in cases if c.condition == condition])
        figures.update(method=method, condition=condition)
        results.append(figures)
        overall = {**figures, "max_abs_ms": figures["worst"][0]["error_ms"] if figures["worst"] else 0.0}
        modes = [figures["modes"].get(m, {}) for m in MODES]
        print(f"  {condition:9s} {figures['words']:5d} | " + " | ".join(cell(f) for f in [overall, *modes])
              + f" | {cell(figures['ends'])}   cpu/audio {figures['align_cpu_rtf']}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", "--aligner", dest="method", default="sphinx", choices=METHODS + ("all",),
                        help="the aligner to measure, or all that apply (default sphinx)")
    parser.add_argument("--language", default="en", choices=LANGUAGES + ("all",),
                        help="the sentences' language, or all six (default en)")
    parser.add_argument("--held-out", action="store_true", help="the sentences kept out of development")
    parser.add_argument("--dev-set", action="store_true",
                        help="the development set: sentences in pieces after silences, dry, in a room, with breaths, in noise, "
                             "and whole, with figures per condition and per place of the word (first, after a pause, "
                             "other)")
    parser.add_argument("--no-onsets", action="store_true",
                        help="sphinx and dtw without the pass that moves boundaries to where the sound rises and falls")
    parser.add_argument("--limit", type=int, default=None, help="only the first N sentences (the paragraph is last)")
    parser.add_argument("--json", dest="json_path", help="write the figures to this file")
    parser.add_argument("--threads", type=int, default=1, help="CPU cores to use (default 1, as the target states)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if hasattr(os, "sched_setaffinity") and args.threads == 1:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    if args.dev_set and args.held_out:
        parser.error("--dev-set is made of development sentences only")
    # All the test speech first, from a fixed seed: espeak-ng's voices carry their roughness from one utterance
    # to the next, even across the aligners' own renderings, so speech made between alignments would differ
    # from run to run and from one method to the next.
    espeak.seed(DEV_SEED)
    languages = LANGUAGES if args.language == "all" else (args.language,)
    speech = {language: dev_cases(language, args.limit) if args.dev_set else main_cases(language, args)
              for language in languages}
    results = []
    for language, cases in speech.items():
        for method in methods_for(language, args.method):
            aligner = aligner_for(method, language, onsets=not args.no_onsets)
            align_audio(aligner, cases[0].audio, cases[0].sample_rate, cases[0].text, language=language)  # warm-up
            if args.dev_set:
                results.extend(report_dev_set(aligner, cases, method))
                continue
            figures = evaluate(aligner, cases)
            figures["method"] = method
            results.append(figures)
            print(f"{language} {method} (backend {figures['backend']}): {figures['words']} words in "
                  f"{figures['sentences']} utterances, {figures['audio_seconds']} s of audio")
            print(f"  mean abs start error {figures['mean_abs_ms']} ms (median {figures['median_abs_ms']} ms, "
                  f"p90 {figures['p90_abs_ms']} ms)")
            print(f"  within 20 ms: {figures['within_20ms']} %   within 50 ms: {figures['within_50ms']} %")
            for place, f in [*figures["modes"].items(), ("end before a pause", figures["ends"])]:
                if f.get("words"):
                    print(f"  {place}: {f['words']} words, mean {f['mean_abs_ms']} ms, within 20 ms "
                          f"{f['within_20ms']} %, within 50 ms {f['within_50ms']} %, worst {f['max_abs_ms']} ms")
            print(f"  align_rtf: {figures['align_rtf']} (wall clock; "
                  f"CPU time of the aligning thread: {figures['align_cpu_rtf']})")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"held_out": args.held_out, "dev_set": args.dev_set,
                                                    "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
